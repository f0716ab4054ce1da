package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ringway/ringway/mgmt"
	"github.com/urfave/cli/v2"
)

// switchCommand is `ringway switch balancing|auto on|off|default`.
func switchCommand() *cli.Command {
	return &cli.Command{
		Name:      "switch",
		Usage:     "set a cluster-wide run-time switch: balancing (L.BAL) or auto (AUTO) on, off, or back to the config's default",
		ArgsUsage: "balancing|auto on|off|default",
		Description: "balancing: load balancing may move VIPs between nodes.\n" +
			"auto: a node that joins the ring or becomes healthy again takes VIPs by\n" +
			"itself; off, it is closed until an operator opens it (`ringway node open`).\n" +
			"The switch rides on the token: one request at any node sets it for the\n" +
			"whole cluster, and it survives restarts of any node.",
		Flags: apiFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usagef("switch needs a switch and a setting (`ringway switch balancing off`); got %d arguments", c.NArg())
			}
			op := mgmt.SwitchOp{Switch: c.Args().Get(0), To: c.Args().Get(1)}
			if err := op.Validate(); err != nil {
				return usagef("%v", err)
			}
			cl, err := apiClient(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
			defer cancel()
			if err := cl.Switch(ctx, op); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "queued: switch %s %s (applied at the node's next turn with the token; `ringway status` shows it)\n", op.Switch, op.To)
			return nil
		},
	}
}

// nodeDrainCommand is `ringway node drain NODE`: close it and wait until
// it answers no VIP.
func nodeDrainCommand() *cli.Command {
	return &cli.Command{
		Name:      "drain",
		Usage:     "close the node and wait until every VIP has left it, then report done",
		ArgsUsage: "NODE",
		Flags: append(apiFlags(),
			&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "give up after `DURATION`"}),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("node drain needs NODE after any flags; got %d arguments", c.NArg())
			}
			node := c.Args().Get(0)
			cl, err := apiClient(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			start := time.Now()
			if err := cl.Node(ctx, mgmt.NodeOp{Op: "close", Node: node}); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "closing %s; waiting for its VIPs to move\n", node)
			for {
				st, err := cl.Status(ctx)
				if err == nil && slices.Contains(st.Closed, node) {
					left := 0
					for _, v := range st.VIPs {
						if v.Owner == node {
							left++
						}
					}
					if left == 0 {
						fmt.Fprintf(c.App.Writer, "drained: %s is closed and answers no VIP (%.1f s); its established flows are not waited for\n", node, time.Since(start).Seconds())
						return nil
					}
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("node drain %s: not drained after %v (last status: %v)", node, c.Duration("timeout"), err)
				case <-time.After(100 * time.Millisecond):
				}
			}
		},
	}
}
