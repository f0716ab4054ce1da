//go:build linux

package caps

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDrop builds testdata/dropper without cgo (the race detector's test
// binary has it), runs it as root and checks every thread: only
// CAP_NET_ADMIN (12) and CAP_NET_RAW (13) left, 0x3000.
func TestDrop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("dropping capabilities needs root to have them: run as root (CI does)")
	}
	bin := filepath.Join(t.TempDir(), "dropper")
	build := exec.Command("go", "build", "-o", bin, "./testdata/dropper")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).CombinedOutput()
	if err != nil {
		t.Fatalf("dropper: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 {
		t.Errorf("only %d thread(s) seen; the test shows little", len(lines))
	}
	want := "CapInh=0000000000000000 CapPrm=0000000000003000 CapEff=0000000000003000 CapBnd=0000000000003000"
	for _, l := range lines {
		if l != want {
			t.Errorf("thread: %s\nwant    %s", l, want)
		}
	}
}
