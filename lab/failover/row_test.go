package failover

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNewRow(t *testing.T) {
	var trials []Trial
	for _, ms := range []int{300, 100, 200, 400, 5000} {
		trials = append(trials, Trial{Node: 1, Outage: time.Duration(ms) * time.Millisecond, Lost: uint64(ms)})
	}
	r := NewRow("keepalived", "x", trials)
	got := [5]float64{r.P50Ms, r.P99Ms, r.MaxMs, r.MeanMs, float64(r.Trials)}
	want := [5]float64{300, 5000, 5000, 1200, 5}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("p50, p99, max, mean, trials (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]float64{300, 100, 200, 400, 5000}, r.OutageMs); d != "" {
		t.Errorf("outages keep trial order (-want +got):\n%s", d)
	}
}

func TestPercentile(t *testing.T) {
	s := make([]float64, 20)
	for i := range s {
		s[i] = float64(i + 1)
	}
	tests := []struct {
		p    float64
		want float64
	}{{0.5, 10}, {0.99, 20}, {0.95, 19}, {0.01, 1}}
	for _, tt := range tests {
		if got := percentile(s, tt.p); got != tt.want {
			t.Errorf("p%v of 1..20 = %v, want %v (nearest rank)", tt.p*100, got, tt.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile of nothing = %v", got)
	}
}

// TestMerge: rows of separate runs join in one file; a re-run replaces its
// own row only.
func TestMerge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out", "failover.json")
	a := Row{System: "ringway", Config: "default", Trials: 20, P99Ms: 80}
	b := Row{System: "keepalived", Config: "defaults", Trials: 20, P99Ms: 3250}
	if err := Merge(path, []Row{a}); err != nil {
		t.Fatal(err)
	}
	if err := Merge(path, []Row{b}); err != nil {
		t.Fatal(err)
	}
	a2 := a
	a2.P99Ms = 90
	if err := Merge(path, []Row{a2}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f File
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(File{Benchmark: "failover", Method: Method, Rows: []Row{a2, b}}, f); d != "" {
		t.Errorf("file (-want +got):\n%s", d)
	}
	for _, key := range []string{`"system"`, `"config"`, `"p50_ms"`, `"p99_ms"`, `"max_ms"`, `"outage_ms"`, `"rows"`} {
		if !strings.Contains(string(raw), key) {
			t.Errorf("file lacks key %s documented in docs/lab.md", key)
		}
	}
	os.WriteFile(path, []byte("{not json"), 0o644)
	if err := Merge(path, []Row{a}); err == nil {
		t.Error("Merge over a corrupt file succeeded; want an error that says which file")
	}
}

func TestKeepalivedConfig(t *testing.T) {
	conf := KeepalivedV3Fast().ConfigFile(2)
	for _, want := range []string{
		"vrrp_version 3",
		"vrrp_sync_group gw",
		"interface ext0",
		"interface int0",
		"priority 200",
		"advert_int 0.1",
		"203.0.113.91/24 dev ext0",
		"198.51.100.91/24 dev int0",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("node 2 VRRPv3 config lacks %q:\n%s", want, conf)
		}
	}
	def := KeepalivedDefaults().ConfigFile(1)
	for _, bad := range []string{"advert_int", "vrrp_version"} {
		if strings.Contains(def, bad) {
			t.Errorf("defaults config sets %s; keepalived's defaults must apply:\n%s", bad, def)
		}
	}
	if !strings.Contains(def, "priority 250") {
		t.Errorf("node 1 is not the highest priority:\n%s", def)
	}
	if got := KeepalivedV3Fast().Config(); got != "VRRPv3, advert 100ms" {
		t.Errorf("Config() = %q", got)
	}
}
