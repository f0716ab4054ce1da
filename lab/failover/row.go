package failover

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Row is one (system, config) result: the line of the table and an element
// of "rows" in bench/out/failover.json (docs/lab.md).
type Row struct {
	System   string    `json:"system"`          // "ringway", "keepalived"
	Config   string    `json:"config"`          // human-readable timer settings
	Trials   int       `json:"trials"`          // cut-offs measured
	P50Ms    float64   `json:"p50_ms"`          // median outage, ms
	P99Ms    float64   `json:"p99_ms"`          // 99th percentile (nearest rank), ms
	MaxMs    float64   `json:"max_ms"`          // longest outage, ms
	MeanMs   float64   `json:"mean_ms"`         // mean outage, ms
	OutageMs []float64 `json:"outage_ms"`       // every trial's outage, in trial order, ms
	Lost     []uint64  `json:"lost"`            // datagrams lost per trial (1 kHz: ≈ ms)
	Nodes    int       `json:"nodes,omitempty"` // lab size (absent in rows of 3-node runs before it was recorded)
	// Phases, per trial where the system's logs said, splits the outage
	// (see Phases); absent for systems that are not Explainers.
	Phases   []Phases  `json:"phases,omitempty"`
	Measured time.Time `json:"measured"` // when the row was written (UTC)
	Host     Host      `json:"host"`
}

// Host describes the machine a row was measured on.
type Host struct {
	Kernel string `json:"kernel"`
	CPUs   int    `json:"cpus"`
	Go     string `json:"go"`
}

// File is the shape of bench/out/failover.json.
type File struct {
	Benchmark string `json:"benchmark"` // "failover"
	Method    string `json:"method"`
	Rows      []Row  `json:"rows"`
}

// Method is written into the file so a reader knows what the numbers mean.
const Method = "Longest gap between consecutive replies of a 1 kHz UDP echo stream " +
	"(client 203.0.113.10 -> server 198.51.100.10 via the VIPs .91) that ends after " +
	"the owner of 203.0.113.91 is cut off from both switches; kernel receive timestamps; " +
	"the cut node is then healed and restarted before the next trial."

// NewRow summarises trials.
func NewRow(system, config string, trials []Trial) Row {
	r := Row{System: system, Config: config, Trials: len(trials), Measured: time.Now().UTC().Truncate(time.Second), Host: host()}
	var sum float64
	for _, t := range trials {
		ms := float64(t.Outage) / float64(time.Millisecond)
		r.OutageMs = append(r.OutageMs, round(ms))
		r.Lost = append(r.Lost, t.Lost)
		if t.Phases != nil {
			r.Phases = append(r.Phases, *t.Phases)
		}
		sum += ms
	}
	if len(trials) > 0 {
		s := slices.Clone(r.OutageMs)
		slices.Sort(s)
		r.P50Ms = percentile(s, 0.50)
		r.P99Ms = percentile(s, 0.99)
		r.MaxMs = s[len(s)-1]
		r.MeanMs = round(sum / float64(len(trials)))
	}
	return r
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func round(ms float64) float64 { return math.Round(ms*10) / 10 }

func host() Host {
	h := Host{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	return h
}

// Merge writes rows into the JSON file at path, replacing rows with the same
// (system, config, nodes) and keeping the others, so separate runs (ringway,
// keepalived, lab sizes) build one table. A row without nodes is a 3-node
// row (written before the size was recorded).
func Merge(path string, rows []Row) error {
	f := File{Benchmark: "failover", Method: Method}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("%s: %w (move it away to start a new file)", path, err)
		}
		f.Benchmark, f.Method = "failover", Method
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	for _, r := range rows {
		i := slices.IndexFunc(f.Rows, func(o Row) bool {
			return o.System == r.System && o.Config == r.Config && o.nodes() == r.nodes()
		})
		if i >= 0 {
			f.Rows[i] = r
		} else {
			f.Rows = append(f.Rows, r)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "->" readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return err
	}
	out := buf.Bytes()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (r Row) nodes() int {
	if r.Nodes == 0 {
		return 3
	}
	return r.Nodes
}

// PrintTable writes rows as an aligned table.
func PrintTable(w io.Writer, rows []Row) {
	fmt.Fprintf(w, "%-12s %-34s %5s %6s %9s %9s %9s\n", "system", "config", "nodes", "trials", "p50", "p99", "max")
	fmt.Fprintln(w, strings.Repeat("-", 90))
	for _, r := range rows {
		fmt.Fprintf(w, "%-12s %-34s %5d %6d %9s %9s %9s\n", r.System, r.Config, r.nodes(), r.Trials, fmtMs(r.P50Ms), fmtMs(r.P99Ms), fmtMs(r.MaxMs))
	}
}

// PrintPhases writes, for each row with phases, the p50 / p99 / max of each
// phase of the outage (see Phases).
func PrintPhases(w io.Writer, rows []Row) {
	for _, r := range rows {
		if len(r.Phases) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s %s: where the outage went, %d of %d trials (node logs, ms timestamps)\n", r.System, r.Config, len(r.Phases), r.Trials)
		fmt.Fprintf(w, "%-44s %9s %9s %9s\n", "phase", "p50", "p99", "max")
		for _, ph := range []struct {
			name string
			get  func(Phases) float64
		}{
			{"token rotation before the cut (status)", func(p Phases) float64 { return p.RotationMs }},
			{"last reply -> cut", func(p Phases) float64 { return p.BeforeMs }},
			{"cut -> membership without it (detect)", func(p Phases) float64 { return p.DetectMs }},
			{"-> new owner acquires the VIP (pass)", func(p Phases) float64 { return p.PassMs }},
			{"-> first reply (GARP, client ARP, path)", func(p Phases) float64 { return p.ResumeMs }},
		} {
			v := make([]float64, len(r.Phases))
			for k, p := range r.Phases {
				v[k] = ph.get(p)
			}
			slices.Sort(v)
			fmt.Fprintf(w, "%-44s %9.1f %9.1f %9.1f\n", ph.name, percentile(v, 0.5), percentile(v, 0.99), v[len(v)-1])
		}
		causes := map[string]int{}
		for _, p := range r.Phases {
			c := p.Cause
			if i := strings.Index(c, ":"); i >= 0 {
				c = c[i+1:]
			}
			causes[strings.TrimSpace(c)]++
		}
		keys := slices.Sorted(maps.Keys(causes))
		for _, c := range keys {
			fmt.Fprintf(w, "  detected by %q: %d\n", c, causes[c])
		}
	}
}

func fmtMs(ms float64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%.2f s", ms/1000)
	}
	return fmt.Sprintf("%.0f ms", ms)
}
