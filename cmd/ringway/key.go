package main

import (
	"fmt"

	"github.com/ringway/ringway/config"
	"github.com/urfave/cli/v2"
)

func keyCommand() *cli.Command {
	return &cli.Command{
		Name:  "key",
		Usage: "manage the cluster key",
		Subcommands: []*cli.Command{{
			Name:      "generate",
			Usage:     "write a new random cluster key (64 hex chars, mode 0600) to FILE",
			ArgsUsage: "FILE",
			Description: "The cluster key authenticates every ring message. Generate it once,\n" +
				"copy it to every node (the path is cluster.key_file in the config).\n" +
				"An existing file is never overwritten.",
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return usagef("key generate needs exactly one FILE, got %d arguments", c.NArg())
				}
				path := c.Args().First()
				if err := config.WriteKey(path); err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "wrote a new cluster key to %s (mode 0600); copy it to every node\n", path)
				return nil
			},
		}},
	}
}
