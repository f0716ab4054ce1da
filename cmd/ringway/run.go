package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/node"
	"github.com/urfave/cli/v2"
)

const defaultConfigPath = "/etc/ringway/ringway.yaml"

func configFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: defaultConfigPath, Usage: "the node's config `FILE`"}
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "run this node of the gateway in the foreground",
		Description: "Reads the config, joins the ring (or forms one alone), answers ARP for the VIPs\n" +
			"the ring gives this node and routes between the subnets. SIGTERM or SIGINT makes\n" +
			"the node hand its VIPs over to the others before it exits.",
		Flags: []cli.Flag{
			configFlag(),
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
		},
		Action: func(c *cli.Context) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
				return usagef("--log-level: %v", err)
			}
			log := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
			cfg, err := config.Load(c.String("config"))
			if err != nil {
				var errs config.Errors
				if errors.As(err, &errs) {
					fmt.Fprintln(c.App.ErrWriter, errs.Error())
					return reportedError{}
				}
				return err
			}
			n, err := node.New(node.Config{File: cfg, Version: versionString(), Logger: log})
			if err != nil {
				return fmt.Errorf("%s: %w", cfg.File, err)
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return n.Run(ctx)
		},
	}
}
