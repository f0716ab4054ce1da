// Command dropper drops every capability but CAP_NET_ADMIN and CAP_NET_RAW
// with caps.Drop, then prints CapEff, CapPrm, CapInh and CapBnd of every
// thread of the process, one line per thread (caps_test.go checks them).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ringway/ringway/internal/caps"
	"golang.org/x/sys/unix"
)

func main() {
	// Start a few threads first, so the drop must reach more than one.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); unix.Getpid() }()
	}
	wg.Wait()
	if err := caps.Drop(unix.CAP_NET_ADMIN, unix.CAP_NET_RAW); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	tasks, _ := filepath.Glob("/proc/self/task/*/status")
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		var f []string
		for _, l := range strings.Split(string(b), "\n") {
			for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd"} {
				if strings.HasPrefix(l, k+":") {
					f = append(f, k+"="+strings.TrimSpace(strings.TrimPrefix(l, k+":")))
				}
			}
		}
		fmt.Println(strings.Join(f, " "))
	}
}
