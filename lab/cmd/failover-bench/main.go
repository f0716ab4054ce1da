// Command failover-bench measures the client's longest outage when the owner
// of its gateway VIP is cut off, on the reference lab, for ringway with its
// default config and for keepalived with its default timers and with VRRPv3
// 100 ms adverts, in one run; it prints a table (p50, p99, max and each
// row's ratio to ringway) and merges the rows into bench/out/failover.json
// (docs/lab.md). It needs root and installs keepalived with apt-get when it
// is missing. ringway is built from ./cmd/ringway unless -ringway names a
// binary.
//
//	go run ./lab/cmd/failover-bench -trials 20
//	go run ./lab/cmd/failover-bench -systems keepalived-default,keepalived-v3
//	go run ./lab/cmd/failover-bench -systems ringway -nodes 32,64 -trials 20
//
// For ringway it also prints where each outage went (detection, the
// membership's pass to the new owner, ARP and path), read from the node
// logs; the rows carry it per trial ("phases").
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/lab/failover"
)

func main() {
	trials := flag.Int("trials", 20, "cut-offs per configuration")
	systems := flag.String("systems", "ringway,keepalived-default,keepalived-v3", "comma-separated: ringway, keepalived-default, keepalived-v3")
	ringway := flag.String("ringway", "", "ringway binary (default: go build ./cmd/ringway into a temporary directory)")
	logs := flag.String("logs", "bench/out/failover-logs", "copy the ringway nodes' logs into this directory, under n<N>/ for labs of other than 3 nodes (\"\" to skip)")
	out := flag.String("out", "bench/out/failover.json", "JSON file to merge the rows into (\"\" to skip)")
	nodes := flag.String("nodes", "3", "nodes in the lab; a comma-separated list measures each size on a lab of its own")
	converge := flag.Duration("converge", 0, "how long ringway may take to form and to take the VIPs back after a heal (default 30 s, 60 s from 33 nodes)")
	prefix := flag.String("prefix", "", "lab namespace prefix (default random)")
	keep := flag.Bool("keep", false, "leave the lab up when a trial fails, for inspection")
	install := flag.Bool("install", true, "apt-get install keepalived if it is missing")
	down := flag.String("down", "", "only tear down the lab with this prefix (after -keep or a crash), then exit")
	flag.Parse()
	if *down != "" {
		if err := lab.Cleanup(*down, ""); err != nil {
			fmt.Fprintln(os.Stderr, "failover-bench:", err)
			os.Exit(1)
		}
		return
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	sizes, err := parseSizes(*nodes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "failover-bench: -nodes:", err)
		os.Exit(2)
	}
	cfg := runConfig{trials: *trials, systems: *systems, out: *out, nodes: sizes, prefix: *prefix,
		install: *install, keep: *keep, ringway: *ringway, logs: *logs, converge: *converge}
	if err := run(cfg, log); err != nil {
		fmt.Fprintln(os.Stderr, "failover-bench:", err)
		os.Exit(1)
	}
}

type runConfig struct {
	trials        int
	systems, out  string
	nodes         []int
	prefix        string
	install, keep bool
	ringway, logs string
	converge      time.Duration
}

// parseSizes reads -nodes: "3" or "32,64"; each size 2..64 (the lab's
// addressing, DESIGN.md "The reference lab").
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 || n > 64 {
			return nil, fmt.Errorf("%q: want lab sizes 2..64, comma-separated", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func run(c runConfig, log *slog.Logger) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root to build network namespaces")
	}
	if c.trials < 1 {
		return fmt.Errorf("-trials %d: need at least 1", c.trials)
	}
	var names []string
	for _, s := range strings.Split(c.systems, ",") {
		switch s = strings.TrimSpace(s); s {
		case "ringway", "keepalived-default", "keepalived-v3":
			names = append(names, s)
		case "":
		default:
			return fmt.Errorf("-systems: unknown %q (want ringway, keepalived-default, keepalived-v3)", s)
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("-systems: nothing to measure")
	}
	var syss []failover.System
	for _, s := range names {
		switch s {
		case "ringway":
			bin := c.ringway
			if bin == "" {
				dir, err := os.MkdirTemp("", "failover-bench-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				bin = filepath.Join(dir, "ringway")
				log.Info("building ringway", "out", bin)
				b := exec.Command("go", "build", "-o", bin, "./cmd/ringway")
				b.Stdout, b.Stderr = os.Stderr, os.Stderr
				if err := b.Run(); err != nil {
					return fmt.Errorf("go build ./cmd/ringway: %w (run from the repository root, or pass -ringway BINARY)", err)
				}
			}
			r := failover.RingwayDefaults(bin)
			r.LogDir = c.logs
			r.Log = log
			r.Converge = c.converge
			syss = append(syss, r)
		case "keepalived-default":
			syss = append(syss, failover.KeepalivedDefaults())
		case "keepalived-v3":
			syss = append(syss, failover.KeepalivedV3Fast())
		}
	}
	if c.install && slices.ContainsFunc(names, func(s string) bool { return strings.HasPrefix(s, "keepalived") }) {
		if err := ensureKeepalived(log); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var rows []failover.Row
	for _, n := range c.nodes {
		for _, sys := range syss {
			if r, ok := sys.(*failover.Ringway); ok {
				r.Converge = c.converge
				if c.converge == 0 && n > 32 {
					// 64 daemons on a small host take 20 s and more to form.
					r.Converge = 60 * time.Second
				}
				r.LogDir = c.logs
				if c.logs != "" && (len(c.nodes) > 1 || n != 3) {
					// The 3-node logs stay where bench-failover has always put them.
					r.LogDir = filepath.Join(c.logs, fmt.Sprintf("n%d", n))
				}
			}
			log.Info("measuring", "system", sys.Name(), "config", sys.Config(), "nodes", n, "trials", c.trials)
			row, err := failover.Measure(ctx, sys, failover.Options{Trials: c.trials, Nodes: n, Prefix: c.prefix, Log: log, Keep: c.keep})
			if err != nil {
				return err
			}
			rows = append(rows, row)
			if c.out != "" {
				// Each row as it comes: a later size that fails keeps the earlier ones.
				if err := failover.Merge(c.out, []failover.Row{row}); err != nil {
					return fmt.Errorf("write %s: %w", c.out, err)
				}
			}
		}
	}
	fmt.Println()
	printTable(os.Stdout, rows)
	failover.PrintPhases(os.Stdout, rows)
	if c.out != "" {
		fmt.Printf("\nrows merged into %s\n", c.out)
	}
	if c.logs != "" && slices.Contains(names, "ringway") {
		fmt.Printf("ringway node logs in %s\n", c.logs)
	}
	return nil
}

// printTable is failover.PrintTable with, when a ringway row was measured,
// each row's p50 and p99 as multiples of ringway's on a lab of its size.
func printTable(w io.Writer, rows []failover.Row) {
	baseOf := func(r failover.Row) int {
		return slices.IndexFunc(rows, func(b failover.Row) bool { return b.System == "ringway" && b.Nodes == r.Nodes })
	}
	if !slices.ContainsFunc(rows, func(r failover.Row) bool { return r.System == "ringway" }) {
		failover.PrintTable(w, rows)
		return
	}
	var buf strings.Builder
	failover.PrintTable(&buf, rows)
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	for k, line := range lines {
		switch {
		case k == 0:
			line += fmt.Sprintf(" %12s %12s", "p50/ringway", "p99/ringway")
		case k == 1:
			line += strings.Repeat("-", 26)
		default:
			r := rows[k-2]
			if base := baseOf(r); base >= 0 {
				line += fmt.Sprintf(" %12s %12s", ratio(r.P50Ms, rows[base].P50Ms), ratio(r.P99Ms, rows[base].P99Ms))
			} else {
				line += fmt.Sprintf(" %12s %12s", "-", "-")
			}
		}
		fmt.Fprintln(w, line)
	}
}

func ratio(v, base float64) string {
	if base <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fx", v/base)
}

func ensureKeepalived(log *slog.Logger) error {
	if _, err := exec.LookPath("keepalived"); err == nil {
		return nil
	}
	log.Info("keepalived missing: installing with apt-get")
	inst := func() error {
		cmd := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "keepalived")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd.Run()
	}
	if inst() != nil {
		upd := exec.Command("apt-get", "update")
		upd.Stdout, upd.Stderr = os.Stderr, os.Stderr
		if err := upd.Run(); err != nil {
			return fmt.Errorf("apt-get update: %w", err)
		}
		if err := inst(); err != nil {
			return fmt.Errorf("apt-get install keepalived: %w (install it by hand)", err)
		}
	}
	if _, err := exec.LookPath("keepalived"); err != nil {
		return fmt.Errorf("keepalived still not on PATH after apt-get: %w", err)
	}
	return nil
}
