// Command ringscale starts N full ringway daemons in the reference lab all
// at once and measures what issue 13 asks of the ring at scale: how long
// until every node sees one ring of all N members, how many membership
// changes the nodes log while the cluster then sits idle, and the CPU each
// node uses meanwhile. It prints one row per size and merges the rows into
// a JSON file (bench/out/ring-lab.json). Needs root and bin/ringway.
//
//	go run ./lab/cmd/ringscale -nodes 8,32 -idle 60s
//	go run ./lab/cmd/ringscale -nodes 32 -ring ack_timeout=8ms
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/lab"
)

// Row is one lab size's measurement.
type Row struct {
	Nodes int    `json:"nodes"`
	Ring  string `json:"ring,omitempty"` // ring: keys changed from the defaults
	// FormMs is from the start of the daemons until every node reports
	// the same ring of all Nodes members; -1 if that did not happen
	// within the form timeout.
	FormMs float64 `json:"form_ms"`
	// IdleS is the idle period after forming; Changes the membership
	// changes logged in it (each counted once, at the node that made it),
	// Learnt the lines of nodes that learnt of them.
	IdleS   float64 `json:"idle_s"`
	Changes int     `json:"changes"`
	Learnt  int     `json:"learnt"`
	// CPU is the mean share of one core per node over the idle period, %.
	CPU   float64 `json:"cpu_pct"`
	Load1 float64 `json:"load1"` // host load average at the end
	When  string  `json:"when"`
}

func main() {
	nodes := flag.String("nodes", "32", "comma-separated lab sizes, one lab each")
	idle := flag.Duration("idle", 60*time.Second, "idle period to count membership changes in")
	form := flag.Duration("form", 60*time.Second, "give up waiting for one ring after this")
	ring := flag.String("ring", "", "space-separated ring: keys for every node, e.g. \"ack_timeout=8ms\"")
	bin := flag.String("ringway", "bin/ringway", "ringway binary")
	level := flag.String("log-level", "info", "the nodes' log level")
	out := flag.String("out", "bench/out/ring-lab.json", "JSON file the rows are merged into (\"\" to skip)")
	logs := flag.String("logs", "", "copy every node's log into this directory")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var rows []Row
	for _, s := range strings.Split(*nodes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > lab.MaxNodes {
			fail(fmt.Errorf("-nodes %q: want sizes 1..%d", s, lab.MaxNodes))
		}
		r, err := measure(ctx, n, *idle, *form, *ring, *bin, *level, *logs)
		if err != nil {
			fail(err)
		}
		rows = append(rows, r)
		fmt.Printf("N=%-3d form %8.0f ms   idle %3.0f s: %5d changes (%6d learnt)   CPU %5.2f %%/node   load %.1f\n",
			r.Nodes, r.FormMs, r.IdleS, r.Changes, r.Learnt, r.CPU, r.Load1)
	}
	if *out != "" {
		if err := merge(*out, rows); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "ringscale:", err)
	os.Exit(1)
}

func measure(ctx context.Context, n int, idle, form time.Duration, ring, bin, level, logs string) (Row, error) {
	row := Row{Nodes: n, Ring: ring, FormMs: -1, When: time.Now().UTC().Format(time.RFC3339)}
	edit, err := ringEdit(ring)
	if err != nil {
		return row, err
	}
	bin, err = filepath.Abs(bin)
	if err != nil {
		return row, err
	}
	l, err := lab.Build(ctx, lab.Spec{Nodes: n})
	if err != nil {
		return row, err
	}
	defer l.Close()
	if _, err := l.WriteCluster(edit); err != nil {
		return row, err
	}
	start := time.Now()
	for i := 1; i <= n; i++ {
		if err := l.StartNode(bin, i, "--log-level", level); err != nil {
			return row, err
		}
	}
	// Formed: every node a member of the same ring of all n.
	for time.Since(start) < form && ctx.Err() == nil {
		if oneRing(ctx, l) {
			row.FormMs = float64(time.Since(start).Microseconds()) / 1000
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ctx.Err() != nil {
		return row, ctx.Err()
	}
	offsets := make([]int64, n+1)
	for i := 1; i <= n; i++ {
		if fi, err := os.Stat(l.LogPath(l.Node(i), "ringway")); err == nil {
			offsets[i] = fi.Size()
		}
	}
	cpu0 := nodesCPU(l)
	t0 := time.Now()
	select {
	case <-time.After(idle):
	case <-ctx.Done():
		return row, ctx.Err()
	}
	el := time.Since(t0)
	cpu1 := nodesCPU(l)
	row.IdleS = el.Seconds()
	row.CPU = (cpu1 - cpu0).Seconds() / el.Seconds() / float64(n) * 100
	for i := 1; i <= n; i++ {
		c, learnt := countChanges(l.LogPath(l.Node(i), "ringway"), offsets[i])
		row.Changes += c
		row.Learnt += learnt
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		row.Load1, _ = strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	}
	if logs != "" {
		dir := filepath.Join(logs, fmt.Sprintf("n%d", n))
		if err := os.MkdirAll(dir, 0o755); err == nil {
			for i := 1; i <= n; i++ {
				if b, err := os.ReadFile(l.LogPath(l.Node(i), "ringway")); err == nil {
					os.WriteFile(filepath.Join(dir, fmt.Sprintf("n%d.log", i)), b, 0o644)
				}
			}
		}
	}
	return row, nil
}

// ringEdit turns "key=value ..." into an edit of every node's ring: section.
func ringEdit(s string) (func(int, *config.Config), error) {
	type kv struct{ k, v string }
	var kvs []kv
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("-ring %q: want key=value", f)
		}
		kvs = append(kvs, kv{k, v})
	}
	var errs []error
	edit := func(_ int, c *config.Config) {
		for _, x := range kvs {
			if x.k == "ack_retries" {
				v, err := strconv.Atoi(x.v)
				errs = append(errs, err)
				c.Ring.AckRetries = v
				continue
			}
			d, err := time.ParseDuration(x.v)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			switch x.k {
			case "tick":
				c.Ring.Tick = d
			case "hop_interval":
				c.Ring.HopInterval = d
			case "min_rotation":
				c.Ring.MinRotation = d
			case "ack_timeout":
				c.Ring.AckTimeout = d
			case "token_loss":
				c.Ring.TokenLoss = d
			case "join_timeout":
				c.Ring.JoinTimeout = d
			default:
				errs = append(errs, fmt.Errorf("-ring: unknown key %q", x.k))
			}
		}
	}
	edit(0, new(config.Config)) // check the keys once
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return edit, nil
}

// oneRing reports whether every node is a member of one ring of all nodes.
func oneRing(ctx context.Context, l *lab.Lab) bool {
	var id uint64
	for i := 1; i <= l.Nodes(); i++ {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := l.NodeStatus(sctx, i)
		cancel()
		if err != nil || st.Mode != "member" || len(st.Members) != l.Nodes() || (i > 1 && st.RingID != id) {
			return false
		}
		id = st.RingID
	}
	return true
}

// nodesCPU sums the CPU time of every process of the lab's nodes.
func nodesCPU(l *lab.Lab) time.Duration {
	var sum time.Duration
	for i := 1; i <= l.Nodes(); i++ {
		d, _ := l.CPU(l.Node(i))
		sum += d
	}
	return sum
}

// countChanges counts the membership lines of a node log after offset:
// those the node made, and those it learnt from others (learnt=true).
func countChanges(path string, offset int64) (made, learnt int) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	f.Seek(offset, 0)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "msg=membership ") {
			continue
		}
		if strings.Contains(line, "learnt=true") {
			learnt++
		} else {
			made++
		}
	}
	return made, learnt
}

func merge(path string, rows []Row) error {
	var all []Row
	if b, err := os.ReadFile(path); err == nil {
		json.Unmarshal(b, &all)
	}
	all = append(all, rows...)
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
