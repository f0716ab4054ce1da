package failover

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ringway/ringway/mgmt"
)

// TestRingwayOneTrial runs the whole harness once with ringway's default
// config: the cluster comes up with n1 owning the gateway VIPs, n1 is cut
// off, the stream resumes through a survivor, and after the heal the ring
// re-forms with n1 owning the VIPs again (Recover). It needs root.
func TestRingwayOneTrial(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("builds network namespaces and runs ringway nodes: run as root (CI does)")
	}
	if testing.Short() {
		t.Skip("-short: a ringway trial takes a few seconds")
	}
	bin := filepath.Join(t.TempDir(), "ringway")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/ringway").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/ringway: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	logs := t.TempDir()
	sys := &Ringway{Binary: bin, LogDir: logs}
	row, err := Measure(ctx, sys, Options{Trials: 1, StateDir: t.TempDir()})
	if err != nil {
		for i := 1; i <= 3; i++ {
			if b, err := os.ReadFile(filepath.Join(logs, fmt.Sprintf("n%d.log", i))); err == nil {
				t.Logf("n%d log:\n%s", i, b)
			}
		}
		t.Fatal(err)
	}
	// Default timers repair a crash in well under 100 ms; 2 s is the
	// integration tests' budget on a loaded CI machine.
	if row.Trials != 1 || row.MaxMs <= 0 || row.MaxMs > 2000 {
		t.Errorf("row = %+v, want one outage under 2 s", row)
	}
	if row.Lost[0] == 0 {
		t.Error("no datagram lost in a cut: the cut did not interrupt the stream's path")
	}
	if row.System != "ringway" || row.Config != sys.Config() {
		t.Errorf("row names %q %q", row.System, row.Config)
	}
	t.Logf("ringway %s: outage %.1f ms, lost %d", row.Config, row.MaxMs, row.Lost[0])
}

func TestRingwayAgree(t *testing.T) {
	vips := func(owners ...string) []mgmt.VIP {
		var out []mgmt.VIP
		for k, o := range owners {
			out = append(out, mgmt.VIP{VIP: mustAddr(t, k), Owner: o})
		}
		return out
	}
	st := func(node string, ring uint64, members []string, owners ...string) mgmt.Status {
		return mgmt.Status{Node: node, Mode: "member", RingID: ring, Members: members, VIPs: vips(owners...)}
	}
	all := []string{"n1", "n2", "n3"}
	tests := []struct {
		name string
		sts  []mgmt.Status
		ok   bool
	}{
		{"converged", []mgmt.Status{st("n1", 7, all, "n1", "n2"), st("n2", 7, []string{"n2", "n3", "n1"}, "n1", "n2"), st("n3", 7, all, "n1", "n2")}, true},
		{"cut node still alone", []mgmt.Status{st("n1", 9, []string{"n1"}, "n1", "n1"), st("n2", 7, []string{"n2", "n3"}, "n2", "n2"), st("n3", 7, []string{"n2", "n3"}, "n2", "n2")}, false},
		{"two rings", []mgmt.Status{st("n1", 8, all, "n1", "n2"), st("n2", 7, all, "n1", "n2"), st("n3", 7, all, "n1", "n2")}, false},
		{"tables differ", []mgmt.Status{st("n1", 7, all, "n1", "n2"), st("n2", 7, all, "n2", "n2"), st("n3", 7, all, "n1", "n2")}, false},
		{"owner gone", []mgmt.Status{st("n1", 7, all, "n4", "n2"), st("n2", 7, all, "n4", "n2"), st("n3", 7, all, "n4", "n2")}, false},
	}
	for _, tt := range tests {
		p := agree(tt.sts, all)
		if (p == "") != tt.ok {
			t.Errorf("%s: agree = %q, want ok=%v", tt.name, p, tt.ok)
		}
	}
	// From ten nodes on, node order (n1, n2, ..., n10) is not string order
	// (n1, n10, n2, ...): the members of a 12-node ring in either order agree.
	var twelve []string
	for i := 1; i <= 12; i++ {
		twelve = append(twelve, fmt.Sprintf("n%d", i))
	}
	lexical := slices.Clone(twelve)
	slices.Sort(lexical)
	if p := agree([]mgmt.Status{st("n1", 7, twelve, "n1", "n2"), st("n2", 7, lexical, "n1", "n2")}, twelve); p != "" {
		t.Errorf("12 nodes, one ring: agree = %q", p)
	}
	if p := agree([]mgmt.Status{st("n1", 7, twelve[:11], "n1", "n2")}, twelve); p == "" {
		t.Error("11 of 12 members counted as converged")
	}
	leaving := st("n1", 7, all, "n1", "n2")
	leaving.Mode = "leaving"
	if p := agree([]mgmt.Status{leaving}, all); p == "" {
		t.Error("a leaving node counted as converged")
	}
}

func TestNodeIndex(t *testing.T) {
	for id, want := range map[string]int{"n1": 1, "n3": 3, "n4": 0, "x1": 0, "n": 0, "": 0} {
		got, err := nodeIndex(id, 3)
		if got != want || (err == nil) != (want != 0) {
			t.Errorf("nodeIndex(%q) = %d, %v; want %d", id, got, err, want)
		}
	}
}

func mustAddr(t *testing.T, k int) netip.Addr {
	t.Helper()
	return netip.AddrFrom4([4]byte{203, 0, 113, byte(91 + k)})
}
