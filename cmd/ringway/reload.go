package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ringway/ringway/mgmt"
	"github.com/urfave/cli/v2"
)

func reloadCommand() *cli.Command {
	return &cli.Command{
		Name:  "reload",
		Usage: "make a running node re-read its config file and apply it to the whole cluster",
		Description: "The node validates its file as `ringway config check` does and refuses a bad one\n" +
			"(the node keeps running on its configuration). What may change at run time (VIPs,\n" +
			"VIP policies, balancing) is applied by every node at the same point of the token's\n" +
			"rotation as one config epoch; keys that cannot change at run time are refused with\n" +
			"the restart they need. Same as SIGHUP (systemctl reload ringway), but answers here.\n\n" +
			"Open flows through VIPs the file removes go on until they end (hosts that still\n" +
			"hold the old owner's MAC keep using it); with --drop-flows every node drops them\n" +
			"from its flow table as it applies the change (the stateful filter's flows whose\n" +
			"either end is a removed VIP or a host that used one as its gateway).",
		Flags: append(apiFlags(), &cli.BoolFlag{Name: "drop-flows",
			Usage: "drop the open flows through the VIPs this reload removes, on every node (default: they finish)"}),
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("reload takes no arguments; got %d", c.NArg())
			}
			cl, err := apiClient(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
			defer cancel()
			res, err := cl.Reload(ctx, mgmt.ReloadOptions{DropFlows: c.Bool("drop-flows")})
			if err != nil {
				return err
			}
			return printReload(c, res)
		},
	}
}

func printReload(c *cli.Context, res mgmt.ReloadResult) error {
	w := c.App.Writer
	switch res.Outcome {
	case "applied":
		fmt.Fprintf(w, "applied: the cluster runs config epoch %d (hash %s); changed: %v\n", res.Epoch, res.Hash, res.Changes)
		if len(res.DropFlows) > 0 {
			fmt.Fprintf(w, "flows through %s dropped on every node\n", strings.Join(res.DropFlows, ", "))
		}
	case "unchanged":
		fmt.Fprintf(w, "unchanged: the cluster already runs this file (epoch %d, hash %s)\n", res.Epoch, res.Hash)
	case "pending":
		fmt.Fprintf(w, "pending: proposed (hash %s) but not applied yet; is the node a member of a ring with quorum? Check `ringway status`\n", res.Hash)
		return reportedError{}
	default:
		fmt.Fprintln(c.App.ErrWriter, "refused: nothing was applied; the node keeps running on its configuration:")
		for _, e := range res.Errors {
			fmt.Fprintln(c.App.ErrWriter, e)
		}
		return reportedError{}
	}
	for _, n := range res.Notes {
		fmt.Fprintln(c.App.ErrWriter, "note: "+n)
	}
	return nil
}

// configLine is the status's config line: the cluster's epoch and hash,
// then each node's file hash ("=" when it is the cluster's), and the keys
// in which the answering node's file differs.
func configLine(st mgmt.Status) string {
	c := st.Config
	var b strings.Builder
	fmt.Fprintf(&b, "epoch %d, hash %s; files:", c.Epoch, c.Hash)
	for _, n := range st.Nodes {
		h, ok := c.Files[n]
		switch {
		case n == st.Node:
			h, ok = c.FileHash, true
		case !ok:
			h = "?"
		}
		if h == c.Hash {
			h = "="
		}
		fmt.Fprintf(&b, " %s %s", n, h)
	}
	if len(c.Differs) > 0 {
		fmt.Fprintf(&b, " (%s's file differs from the cluster's in %s: update it, or reload the node whose file is right)", st.Node, strings.Join(c.Differs, ", "))
	}
	return b.String()
}
