package failover

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestKeepalivedOneTrial runs the whole harness once with VRRPv3 100 ms
// adverts: it proves Measure, the keepalived system and the outage
// measurement work together. It needs root and keepalived on PATH (the
// benchmark installs it; unit tests never do).
func TestKeepalivedOneTrial(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("builds network namespaces: run as root (CI does)")
	}
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Skip("keepalived not installed (make bench-failover-keepalived installs it)")
	}
	if testing.Short() {
		t.Skip("-short: a keepalived trial takes a few seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	row, err := Measure(ctx, KeepalivedV3Fast(), Options{Trials: 1, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// VRRPv3 at 100 ms: the backup (priority 200) declares the master down
	// after 3 adverts + skew = 322 ms, then sends GARP.
	if row.Trials != 1 || row.MaxMs < 150 || row.MaxMs > 2000 {
		t.Errorf("row = %+v, want one outage of roughly 0.3 s", row)
	}
	if row.Lost[0] == 0 {
		t.Error("no datagram lost in a cut: the cut did not happen")
	}
	t.Logf("keepalived VRRPv3 100 ms: outage %.0f ms, lost %d", row.MaxMs, row.Lost[0])
}
