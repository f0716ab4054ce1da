package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/ringway/ringway/mgmt"
	"github.com/urfave/cli/v2"
)

// clusterCommand is `ringway cluster balance|auto on|off`: the patent's
// L.BAL and AUTO options, cluster-wide through the token.
func clusterCommand() *cli.Command {
	sw := func(name, usage string) *cli.Command {
		return &cli.Command{
			Name: name, Usage: usage, ArgsUsage: "on|off", Flags: apiFlags(),
			Action: func(c *cli.Context) error {
				state := c.Args().Get(0)
				if c.NArg() != 1 || (state != "on" && state != "off") {
					return usagef("cluster %s needs on or off after any flags (`ringway cluster %s [-c FILE] on|off`)", name, name)
				}
				cl, err := apiClient(c)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
				defer cancel()
				if err := cl.Switch(ctx, mgmt.SwitchOp{Switch: name, On: state == "on"}); err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "queued: %s %s (applied when the node next holds the token; `ringway status` shows the switches)\n", name, state)
				return nil
			},
		}
	}
	return &cli.Command{
		Name:  "cluster",
		Usage: "switch cluster-wide options: load balancing (L.BAL) and automatic rejoin (AUTO)",
		Subcommands: []*cli.Command{
			sw("balance", "L.BAL: move VIPs from busy nodes to idle ones (on by default)"),
			sw("auto", "AUTO: a node that joins or recovers takes VIPs by itself (on by default); off, it stays closed until `ringway node open`"),
		},
	}
}

// switchesLine renders the switches for `ringway status`.
func switchesLine(balance, auto bool) string {
	onOff := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	return fmt.Sprintf("L.BAL %s, AUTO %s", onOff(balance), onOff(auto))
}

// nodeDrainCommand is `ringway node drain NODE`: close the node, then wait
// until it answers no VIP and, when the node asked is the one drained and
// runs the filter, until its flows have ended.
func nodeDrainCommand() *cli.Command {
	return &cli.Command{
		Name:      "drain",
		Usage:     "close a node and wait until its VIPs have moved and its flows have ended (maintenance)",
		ArgsUsage: "NODE",
		Flags: append(apiFlags(),
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "give up waiting after this long (the node stays closed)"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("node drain needs NODE after any flags (`ringway node drain [-c FILE] NODE`); got %d arguments", c.NArg())
			}
			cl, err := apiClient(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			return drain(ctx, cl, c.Args().Get(0), c.App.Writer, 200*time.Millisecond)
		},
	}
}

// drainer is what drain needs of the management client.
type drainer interface {
	Node(ctx context.Context, op mgmt.NodeOp) error
	Status(ctx context.Context) (mgmt.Status, error)
}

// drain closes node and polls the status every period until the node is
// closed and owns no VIP, then, if the node asked is node itself and has a
// filter, until it tracks no flow. It prints each stage once.
func drain(ctx context.Context, cl drainer, node string, w io.Writer, period time.Duration) error {
	if err := cl.Node(ctx, mgmt.NodeOp{Op: "close", Node: node}); err != nil {
		return err
	}
	fmt.Fprintf(w, "closing %s\n", node)
	stage, last := 0, -1
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		st, err := cl.Status(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("drain %s: gave up (%w); the node stays closed, `ringway node open %s` undoes it", node, ctx.Err(), node)
			}
			return err
		}
		owns := 0
		for _, v := range st.VIPs {
			if v.Owner == node && !v.Closed {
				owns++
			}
		}
		switch {
		case stage == 0 && (!slices.Contains(st.Closed, node) || owns > 0):
			if owns != last {
				fmt.Fprintf(w, "  %s answers %d VIPs\n", node, owns)
				last = owns
			}
		case stage == 0:
			fmt.Fprintf(w, "  %s is closed and answers no VIP\n", node)
			stage, last = 1, -1
			if st.Node != node || st.Filter == nil || !st.Filter.Enabled {
				if st.Node != node {
					fmt.Fprintf(w, "  flows: not visible from %s; ask %s itself (--node) to wait for its flows too\n", st.Node, node)
				}
				fmt.Fprintf(w, "drained %s\n", node)
				return nil
			}
			continue
		case st.Filter == nil || st.Filter.Flows == 0:
			fmt.Fprintf(w, "  %s tracks no flow\ndrained %s\n", node, node)
			return nil
		default:
			if n := int(st.Filter.Flows); n != last {
				fmt.Fprintf(w, "  %s still tracks %d flows\n", node, n)
				last = n
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain %s: gave up (%w); the node stays closed, `ringway node open %s` undoes it", node, ctx.Err(), node)
		case <-tick.C:
		}
	}
}
