package main

import (
	"context"
	"fmt"
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
			"the restart they need. Same as SIGHUP (systemctl reload ringway), but answers here.",
		Flags: apiFlags(),
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
			res, err := cl.Reload(ctx)
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
	return nil
}
