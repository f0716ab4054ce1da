//go:build linux

// Package caps drops a root process's capabilities to the few it keeps
// needing: `ringway run` keeps CAP_NET_ADMIN and CAP_NET_RAW once its
// sockets, TUN device, nftables table and sysctls are set up.
//
// Capabilities are per thread in Linux (capset(2) and PR_CAPBSET_DROP act
// on the calling thread), and a Go program has many threads; so every call
// goes through syscall.AllThreadsSyscall, which runs it on each of the
// runtime's threads. That function refuses (ENOTSUP) in a binary linked
// with cgo, whose threads the runtime does not know: Drop then returns
// ErrCgo and changes nothing. `make build` builds with CGO_ENABLED=0.
package caps

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrCgo: the binary uses cgo, so not every thread can be reached.
var ErrCgo = errors.New("capabilities cannot be changed on every thread of a binary built with cgo; build with CGO_ENABLED=0")

// Drop removes every capability but keep from the bounding, effective,
// permitted and inheritable sets (and so the ambient set) of every thread.
// It needs CAP_SETPCAP in the effective set (root has it).
func Drop(keep ...uintptr) error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	kept := func(c uintptr) bool {
		for _, k := range keep {
			if k == c {
				return true
			}
		}
		return false
	}
	// The bounding set first: dropping from it needs CAP_SETPCAP, which
	// the capset below removes.
	for c := uintptr(0); c <= last; c++ {
		if kept(c) {
			continue
		}
		if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0); e != 0 {
			if e == syscall.ENOTSUP {
				return ErrCgo
			}
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, e)
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for _, k := range keep {
		data[k/32].Effective |= 1 << (k % 32)
		data[k/32].Permitted |= 1 << (k % 32)
	}
	_, _, e := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	runtime.KeepAlive(&hdr)
	runtime.KeepAlive(&data)
	if e != 0 {
		if e == syscall.ENOTSUP {
			return ErrCgo
		}
		return fmt.Errorf("capset: %w", e)
	}
	return nil
}

// lastCap is the highest capability number the kernel knows.
func lastCap() (uintptr, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("read the highest capability: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 8)
	if err != nil {
		return 0, fmt.Errorf("/proc/sys/kernel/cap_last_cap: %w", err)
	}
	return uintptr(n), nil
}
