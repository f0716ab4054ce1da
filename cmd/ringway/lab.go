package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/lab/workload"
	"github.com/ringway/ringway/mgmt"
	"github.com/urfave/cli/v2"
)

const defaultLabPrefix = "rw"

func labFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "prefix", Value: defaultLabPrefix, Usage: "namespace name `PREFIX` of the lab (two labs with different prefixes coexist)"},
		&cli.StringFlag{Name: "state-dir", Value: lab.DefaultStateDir, Usage: "`DIR` holding each lab's configs, keys, logs and pids"},
	}
}

func labCommand() *cli.Command {
	return &cli.Command{
		Name:  "lab",
		Usage: "the reference lab in network namespaces: a client, a server and N ringway nodes",
		Description: "Builds DESIGN.md's reference lab on this machine, in network namespaces only:\n" +
			"external 203.0.113.0/24 and internal 198.51.100.0/24, one bridge each in a switch\n" +
			"namespace, node i at .i on both, VIPs .91-.94, a client at 203.0.113.10 (gateway\n" +
			"203.0.113.91) and a server at 198.51.100.10 (gateway 198.51.100.91). Needs root.\n" +
			"Inspect by hand with `ip netns exec <prefix>-n1 ...`; see docs/lab.md.",
		Subcommands: []*cli.Command{
			{
				Name: "up", Usage: "build the lab and start the nodes and an echo server",
				Flags: append(labFlags(),
					&cli.IntFlag{Name: "nodes", Value: 3, Usage: "number of ringway nodes (1-64)"},
					&cli.StringFlag{Name: "log-level", Value: "info", Usage: "the nodes' --log-level: debug, info, warn or error"}),
				Action: func(c *cli.Context) error {
					if err := needRoot(); err != nil {
						return err
					}
					l, err := labUp(c.Context, c.String("prefix"), c.String("state-dir"), c.Int("nodes"), nil, c.App.Writer, "--log-level", c.String("log-level"))
					if err != nil {
						return err
					}
					f := labFlagsUsed(c)
					fmt.Fprintf(c.App.Writer, "lab %s is up: `ringway lab status%s`, `ringway lab fail%s n1`, `ringway lab down%s`; logs in %s/logs\n", l.Prefix(), f, f, f, l.Dir())
					return nil
				},
			},
			{
				Name: "down", Usage: "stop every process of the lab and delete its namespaces (also after a crashed run)",
				Flags: labFlags(),
				Action: func(c *cli.Context) error {
					if err := needRoot(); err != nil {
						return err
					}
					if err := lab.Cleanup(c.String("prefix"), c.String("state-dir")); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "lab %s is down\n", c.String("prefix"))
					return nil
				},
			},
			{
				Name: "status", Usage: "show each node's process state and the cluster as the first live node sees it",
				Flags: labFlags(),
				Action: func(c *cli.Context) error {
					l, err := openLab(c)
					if err != nil {
						return err
					}
					return labStatus(c.Context, l, c.App.Writer)
				},
			},
			{
				Name: "fail", Usage: "make a node fail: cut its switch ports, kill -9 it, or SIGSTOP it", ArgsUsage: "NODE",
				Flags: append(labFlags(), &cli.StringFlag{Name: "mode", Value: "cut", Usage: "cut (the node does not know), kill (kill -9) or stop (SIGSTOP, a hang)"}),
				Action: func(c *cli.Context) error {
					l, i, err := labNode(c)
					if err != nil {
						return err
					}
					switch mode := c.String("mode"); mode {
					case "cut":
						err = l.Cut(i)
					case "kill":
						_, err = l.Signal(l.Node(i), syscall.SIGKILL)
					case "stop":
						_, err = l.Signal(l.Node(i), syscall.SIGSTOP)
					default:
						return usagef("lab fail --mode %q: want cut, kill or stop", mode)
					}
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "n%d failed (%s); `ringway lab heal%s n%d` brings it back\n", i, c.String("mode"), labFlagsUsed(c), i)
					return nil
				},
			},
			{
				Name: "heal", Usage: "bring a failed node back: reconnect its ports, resume it, or restart it", ArgsUsage: "NODE",
				Flags: labFlags(),
				Action: func(c *cli.Context) error {
					l, i, err := labNode(c)
					if err != nil {
						return err
					}
					what, err := labHeal(l, i)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "n%d: %s\n", i, what)
					return nil
				},
			},
			{
				Name:  "demo",
				Usage: "build a 3-node lab, show a live cluster and a fail-over, then clean up",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "prefix", Value: "rwdemo", Usage: "namespace name `PREFIX`"},
					&cli.StringFlag{Name: "state-dir", Value: lab.DefaultStateDir, Usage: "state `DIR`"},
					&cli.BoolFlag{Name: "keep", Usage: "leave the lab running at the end (then `ringway lab down --prefix PREFIX`)"},
				},
				Action: func(c *cli.Context) error {
					if err := needRoot(); err != nil {
						return err
					}
					// Ctrl-C ends the demo early, but through its clean-up:
					// killed outright it would leave the lab's namespaces
					// and nodes running.
					ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
					defer stop()
					return demo(ctx, c.String("prefix"), c.String("state-dir"), c.Bool("keep"), c.App.Writer)
				},
			},
			{
				// The lab's server runs this to keep an echo service up after
				// `lab up` returns.
				Name: "echo-server", Hidden: true, ArgsUsage: "ADDR:PORT",
				Action: func(c *cli.Context) error { return echoServer(c.Context, c.Args().First()) },
			},
		},
	}
}

func needRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("the lab builds network namespaces and runs nodes with raw sockets: run it as root (e.g. `sudo make demo`)")
	}
	return nil
}

func openLab(c *cli.Context) (*lab.Lab, error) {
	if err := needRoot(); err != nil {
		return nil, err
	}
	prefix, dir := c.String("prefix"), c.String("state-dir")
	l, err := lab.Open(prefix, dir)
	if errors.Is(err, fs.ErrNotExist) {
		others := "none"
		if labs := lab.List(dir); len(labs) > 0 {
			others = strings.Join(labs, ", ")
		}
		return nil, fmt.Errorf("no lab %q in %s (labs there: %s): give --prefix, or start one with `ringway lab up%s`", prefix, dir, others, labFlagsUsed(c))
	}
	return l, err
}

// labFlagsUsed repeats the --prefix and --state-dir this command got, for
// the commands it suggests next ("" when both are the defaults).
func labFlagsUsed(c *cli.Context) string {
	var s string
	if p := c.String("prefix"); p != defaultLabPrefix {
		s += " --prefix " + p
	}
	if d := c.String("state-dir"); d != lab.DefaultStateDir {
		s += " --state-dir " + d
	}
	return s
}

func labNode(c *cli.Context) (*lab.Lab, int, error) {
	if c.NArg() != 1 {
		return nil, 0, usagef("lab %s needs exactly one NODE (n1, n2, ...), after the flags: `ringway lab %s --prefix rw n2`", c.Command.Name, c.Command.Name)
	}
	l, err := openLab(c)
	if err != nil {
		return nil, 0, err
	}
	i, err := strconv.Atoi(strings.TrimPrefix(c.Args().First(), "n"))
	if err != nil || i < 1 || i > l.Nodes() {
		return nil, 0, usagef("node %q: want n1 to n%d", c.Args().First(), l.Nodes())
	}
	return l, i, nil
}

// labUp builds the lab, writes the node configs (edit, if set, adjusts
// each) and starts the nodes (with nodeArgs after `run -c FILE`) and the
// server's UDP echo.
func labUp(ctx context.Context, prefix, stateDir string, nodes int, edit func(i int, c *config.Config), w io.Writer, nodeArgs ...string) (*lab.Lab, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, err
	}
	bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	l, err := lab.Build(bctx, lab.Spec{Prefix: prefix, Nodes: nodes, StateDir: stateDir, WireChecksums: true})
	if err != nil {
		return nil, err // Build names a prefix in use and how to free it
	}
	fail := func(err error) (*lab.Lab, error) {
		l.Close()
		return nil, err
	}
	if _, err := l.WriteCluster(edit); err != nil {
		return fail(err)
	}
	for i := 1; i <= nodes; i++ {
		if err := l.StartNode(bin, i, nodeArgs...); err != nil {
			return fail(err)
		}
	}
	echo := fmt.Sprintf("%s:%d", lab.ServerAddr, 7)
	if err := l.Start(l.Server(), execCommand(bin, "lab", "echo-server", echo)); err != nil {
		return fail(err)
	}
	fmt.Fprintf(w, "built lab %s: %d nodes, client %s, server %s (UDP echo on %s)\n", l.Prefix(), nodes, lab.ClientAddr, lab.ServerAddr, echo)
	return l, nil
}

// labStatus prints each node's process and link state, then the cluster as
// the first node that is running and not cut off sees it.
func labStatus(ctx context.Context, l *lab.Lab, w io.Writer) error {
	var view *mgmt.Status
	for i := 1; i <= l.Nodes(); i++ {
		state := "running"
		if pids, _ := l.Pids(l.Node(i)); len(pids) == 0 {
			state = "not running"
		} else if l.Stopped(l.Node(i)) {
			state = "stopped (SIGSTOP)"
		}
		if l.IsCut(i) {
			state += ", cut off the switch"
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := l.NodeStatus(sctx, i)
		cancel()
		if err != nil {
			fmt.Fprintf(w, "n%d: %s; no answer from its management API\n", i, state)
			continue
		}
		ring := "in no ring yet"
		if len(st.Members) > 0 {
			ring = "sees members " + strings.Join(st.Members, " ")
		}
		fmt.Fprintf(w, "n%d: %s, %s, %s\n", i, state, st.Mode, ring)
		if view == nil && !l.IsCut(i) {
			view = &st
		}
	}
	if view == nil {
		return errors.New("no node of the lab answers")
	}
	fmt.Fprintln(w)
	printStatus(w, *view)
	return nil
}

// labHeal undoes whatever failed node i: a cut is reconnected, a stopped
// process resumed, a dead one restarted.
func labHeal(l *lab.Lab, i int) (string, error) {
	var did []string
	if l.IsCut(i) {
		if err := l.Heal(i); err != nil {
			return "", err
		}
		did = append(did, "reconnected to the switch")
	}
	pids, _ := l.Pids(l.Node(i))
	switch {
	case len(pids) == 0:
		bin, err := os.Executable()
		if err != nil {
			return "", err
		}
		if err := l.StartNode(bin, i); err != nil {
			return "", err
		}
		did = append(did, "restarted")
	case l.Stopped(l.Node(i)):
		if _, err := l.Signal(l.Node(i), syscall.SIGCONT); err != nil {
			return "", err
		}
		did = append(did, "resumed")
	}
	if len(did) == 0 {
		return "nothing to heal: running and connected", nil
	}
	return strings.Join(did, " and "), nil
}

func execCommand(bin string, args ...string) *exec.Cmd { return exec.Command(bin, args...) }

// echoServer answers UDP datagrams on addr with themselves until ctx ends.
func echoServer(ctx context.Context, addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return usagef("echo-server: %v", err)
	}
	es, err := workload.ListenEcho(nil, "", ap)
	if err != nil {
		return err
	}
	defer es.Close()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}
