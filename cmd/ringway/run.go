package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/internal/caps"
	"github.com/ringway/ringway/internal/rtsched"
	"github.com/ringway/ringway/internal/sdnotify"
	"github.com/ringway/ringway/mgmt"
	"github.com/ringway/ringway/node"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

const defaultConfigPath = "/etc/ringway/ringway.yaml"

// startCPUProfile profiles the process into a new file at path until
// the returned stop runs.
func startCPUProfile(path string) (stop func(*slog.Logger), err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func(log *slog.Logger) {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			log.Error("CPU profile not written", "file", path, "err", err)
			return
		}
		log.Info("CPU profile written", "file", path)
	}, nil
}

func configFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: defaultConfigPath, Usage: "the node's config `FILE`"}
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "run this node of the gateway in the foreground",
		Description: "Reads the config, joins the ring (or forms one alone), answers ARP for the VIPs\n" +
			"the ring gives this node and routes between the subnets. SIGTERM or SIGINT makes\n" +
			"the node hand its VIPs over to the others before it exits; a second one makes it\n" +
			"stop at once (the others then detect it as failed). SIGHUP re-reads the config\n" +
			"file and applies it to the whole cluster (`ringway reload`; docs/operating.md).\n" +
			"Under systemd (Type=notify) it reports READY=1 once it serves and STOPPING=1 when\n" +
			"it begins to leave.",
		Flags: []cli.Flag{
			configFlag(),
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.BoolFlag{Name: "keep-caps", Usage: "run as root: keep every capability instead of only CAP_NET_ADMIN and CAP_NET_RAW once set up"},
			&cli.StringFlag{Name: "cpu-profile", Usage: "for developers: write a CPU profile (go tool pprof) of the whole run to `FILE`"},
		},
		Action: func(c *cli.Context) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
				return usagef("--log-level: %v", err)
			}
			log := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
			if p := c.String("cpu-profile"); p != "" {
				stop, err := startCPUProfile(p)
				if err != nil {
					return fmt.Errorf("--cpu-profile: %w", err)
				}
				defer stop(log)
			}
			cfg, err := config.Load(c.String("config"))
			if err != nil {
				var errs config.Errors
				if errors.As(err, &errs) {
					fmt.Fprintln(c.App.ErrWriter, errs.Error())
					return reportedError{}
				}
				return err
			}
			// SIGHUP's default action ends the process: catch it before
			// anything else, so that a reload never takes a node down.
			hups := make(chan os.Signal, 1)
			signal.Notify(hups, syscall.SIGHUP)
			defer signal.Stop(hups)
			n, err := node.New(node.Config{File: cfg, Version: versionString(), Logger: log,
				OnReady:    func() { notify(log, sdnotify.Ready) },
				OnStopping: func() { notify(log, sdnotify.Stopping) },
			})
			if err != nil {
				return fmt.Errorf("%s: %w", cfg.File, err)
			}
			realtime(log, cfg.Ring.RealtimePriority) // needs CAP_SYS_NICE: before dropCaps
			if os.Geteuid() == 0 && !c.Bool("keep-caps") {
				dropCaps(log, cfg.Monitors.Application.User != "")
			}
			// The first SIGTERM or SIGINT leaves gracefully; a second one
			// stops at once (still undoing the kernel setup). A second
			// signal within relayWindow of the first is taken for the same
			// one: a terminal's Ctrl-C reaches both sudo (which relays it)
			// and ringway.
			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)
			ctx, cancel := context.WithCancel(c.Context)
			defer cancel()
			done := make(chan struct{})
			defer close(done)
			go func() {
				var first time.Time
				for {
					select {
					case <-done:
						return
					case <-hups:
						log.Info("SIGHUP: reloading the config file", "file", cfg.File)
						go func() {
							rctx, cancel := context.WithTimeout(ctx, reloadWait)
							defer cancel()
							n.Reload(rctx, mgmt.ReloadOptions{}) // logs its outcome
						}()
					case sig := <-sigs:
						switch {
						case first.IsZero():
							first = time.Now()
							log.Info("signal: leaving the ring gracefully; send it again to stop at once", "signal", sig.String())
							cancel()
						case time.Since(first) < relayWindow:
							// the same keypress, relayed
						default:
							log.Warn("second signal: stopping at once", "signal", sig.String())
							signal.Stop(sigs) // a third one kills the process the usual way
							n.Hurry()
							return
						}
					}
				}
			}()
			return n.Run(ctx)
		},
	}
}

// relayWindow: a second SIGTERM or SIGINT this soon after the first is the
// same keypress relayed (sudo passes on the Ctrl-C the terminal also sent
// to ringway), not an operator asking to hurry.
const relayWindow = 200 * time.Millisecond

// reloadWait bounds how long a SIGHUP's reload waits for the ring to
// apply it (the outcome is logged either way).
const reloadWait = 4 * time.Second

// notify tells systemd the node's state when it runs the node as a
// Type=notify service; elsewhere it does nothing.
func notify(log *slog.Logger, state string) {
	if sent, err := sdnotify.Notify(state); err != nil {
		log.Warn("cannot notify systemd", "state", state, "err", err)
	} else if sent {
		log.Debug("notified systemd", "state", state)
	}
}

// realtime puts the node under real-time scheduling at prio
// (ring.realtime_priority; 0: normal scheduling), or says why it cannot.
// Under systemd the unit has set it already (CPUSchedulingPolicy=rr).
func realtime(log *slog.Logger, prio int) {
	policy, cur, err := rtsched.Current()
	switch {
	case err != nil:
		log.Warn("cannot read this process's scheduling policy", "err", err)
		return
	case prio > 0 && rtsched.Realtime(policy):
		log.Info("real-time scheduling set before start (systemd CPUSchedulingPolicy)", "policy", policy, "priority", cur, "ring.realtime_priority", prio)
		return
	case prio == 0 && !rtsched.Realtime(policy):
		return
	}
	n, err := rtsched.Set(prio)
	switch {
	case err != nil:
		log.Warn("real-time scheduling not available: on a busy host the ring may remove this node by mistake; "+
			"run as root or with CAP_SYS_NICE (the systemd unit sets CPUSchedulingPolicy=rr), or set ring.realtime_priority: 0",
			"ring.realtime_priority", prio, "err", err)
	case prio == 0:
		log.Info("normal scheduling (ring.realtime_priority: 0)", "threads", n)
	default:
		log.Info("real-time scheduling", "policy", "SCHED_RR", "priority", prio, "threads", n)
	}
}

// dropCaps runs once New has opened every socket, created the TUN device
// and applied the kernel setup (nftables table, rules, sysctls): from then
// on the node needs only CAP_NET_ADMIN (netlink changes, nftables, the
// sysctls it restores on exit) and CAP_NET_RAW (its packet and ping
// sockets, already open). Its uid stays 0, so it can still write the
// root-owned sysctl files it restores.
//
// setuid: the application check runs as another user
// (monitors.application.user), so CAP_SETUID and CAP_SETGID stay too.
func dropCaps(log *slog.Logger, setuid bool) {
	keep, kept := []uintptr{unix.CAP_NET_ADMIN, unix.CAP_NET_RAW}, "CAP_NET_ADMIN CAP_NET_RAW"
	if setuid {
		keep, kept = append(keep, unix.CAP_SETUID, unix.CAP_SETGID), kept+" CAP_SETUID CAP_SETGID (monitors.application.user)"
	}
	switch err := caps.Drop(keep...); {
	case errors.Is(err, caps.ErrCgo):
		log.Warn("keeping every capability: this binary was built with cgo; build it with CGO_ENABLED=0 (make build) to drop them", "err", err)
	case err != nil:
		log.Warn("keeping every capability", "err", err)
	default:
		log.Info("dropped capabilities", "kept", kept)
	}
}
