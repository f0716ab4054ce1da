//go:build linux

package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `ringway lab demo` (what `make demo` shows a newcomer) in
// a lab of its own, so a change that breaks the demo fails `make test`.
func TestDemo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the demo builds network namespaces: run as root (CI does)")
	}
	bin := ringwayBin(t)
	b := make([]byte, 3)
	rand.Read(b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "lab", "demo", "--prefix", "rwd"+hex.EncodeToString(b), "--state-dir", t.TempDir()).CombinedOutput()
	if err != nil {
		t.Fatalf("ringway lab demo: %v\n%s", err, out)
	}
	for _, want := range []string{"ring formed", "dropped by the rules", "longest outage the client saw", "one ring again", "namespaces and processes removed"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}
}
