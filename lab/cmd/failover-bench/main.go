// Command failover-bench measures the client's longest outage when the owner
// of its gateway VIP is cut off, on the reference lab, for keepalived with
// its default timers and with VRRPv3 100 ms adverts; it prints a table and
// merges the rows into bench/out/failover.json (docs/lab.md). It needs root
// and installs keepalived with apt-get when it is missing.
//
//	go run ./lab/cmd/failover-bench -trials 20
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/lab/failover"
)

func main() {
	trials := flag.Int("trials", 20, "cut-offs per configuration")
	systems := flag.String("systems", "keepalived-default,keepalived-v3", "comma-separated: keepalived-default, keepalived-v3")
	out := flag.String("out", "bench/out/failover.json", "JSON file to merge the rows into (\"\" to skip)")
	nodes := flag.Int("nodes", 3, "nodes in the lab")
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
	if err := run(*trials, *systems, *out, *nodes, *prefix, *install, *keep, log); err != nil {
		fmt.Fprintln(os.Stderr, "failover-bench:", err)
		os.Exit(1)
	}
}

func run(trials int, systems, out string, nodes int, prefix string, install, keep bool, log *slog.Logger) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root to build network namespaces")
	}
	if trials < 1 {
		return fmt.Errorf("-trials %d: need at least 1", trials)
	}
	var syss []failover.System
	for _, s := range strings.Split(systems, ",") {
		switch strings.TrimSpace(s) {
		case "keepalived-default":
			syss = append(syss, failover.KeepalivedDefaults())
		case "keepalived-v3":
			syss = append(syss, failover.KeepalivedV3Fast())
		case "":
		default:
			return fmt.Errorf("-systems: unknown %q (want keepalived-default, keepalived-v3)", s)
		}
	}
	if install {
		if err := ensureKeepalived(log); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var rows []failover.Row
	for _, sys := range syss {
		log.Info("measuring", "system", sys.Name(), "config", sys.Config(), "trials", trials)
		row, err := failover.Measure(ctx, sys, failover.Options{Trials: trials, Nodes: nodes, Prefix: prefix, Log: log, Keep: keep})
		if err != nil {
			return err
		}
		rows = append(rows, row)
	}
	fmt.Println()
	failover.PrintTable(os.Stdout, rows)
	if out != "" {
		if err := failover.Merge(out, rows); err != nil {
			return fmt.Errorf("write %s: %w", out, err)
		}
		fmt.Printf("\nrows merged into %s\n", out)
	}
	return nil
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
