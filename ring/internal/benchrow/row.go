// Package benchrow is the one JSON row shape of `make bench-ring`, written by
// the simulator's benchring and the real-UDP ringnetbench (docs/ring.md,
// "Benchmark rows"), and the host facts every row carries.
package benchrow

import (
	"os"
	"strconv"
	"strings"
)

// Row is one JSON result row.
type Row struct {
	Source  string  `json:"source"` // "sim" or "udp"
	Metric  string  `json:"metric"`
	N       int     `json:"n"`
	Unit    string  `json:"unit"`
	P50     float64 `json:"p50,omitempty"`
	P99     float64 `json:"p99,omitempty"`
	Max     float64 `json:"max,omitempty"`
	Value   float64 `json:"value,omitempty"`
	Samples int     `json:"samples,omitempty"`
	Fail    int     `json:"failures"`
	Target  string  `json:"target,omitempty"`
	Pass    *bool   `json:"pass,omitempty"`
	Note    string  `json:"note,omitempty"`
	// LoadAvg is the host's 1-minute load average when the measurement
	// began: timing figures on a shared machine depend on it.
	LoadAvg float64 `json:"loadavg_1m"`
	Cores   int     `json:"host_cores"`
	Timers  string  `json:"timers,omitempty"` // the ring timers measured (udp rows)
	Mode    string  `json:"mode,omitempty"`   // udp rows: proc or inproc
}

// LoadAvg returns the host's 1-minute load average, 0 when unknown.
func LoadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
