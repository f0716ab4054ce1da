package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/ringway/ringway/config"
	"github.com/urfave/cli/v2"
)

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "check a config file, or import the patent's .cfg files",
		Subcommands: []*cli.Command{
			configCheckCommand(),
			configImportCommand(),
		},
	}
}

func configCheckCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "validate a config file and print a one-line summary",
		ArgsUsage: "FILE",
		Description: "Reports every problem in FILE as file:line: message and exits 1, or prints\n" +
			"\"ok: ...\" and exits 0. A missing cluster key file is only a warning here\n" +
			"(`ringway key generate FILE` creates one); a malformed one is an error.",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("config check needs exactly one FILE, got %d arguments", c.NArg())
			}
			return checkConfig(c.Args().First(), c.App.Writer, c.App.ErrWriter)
		},
	}
}

func checkConfig(path string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(path)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			fmt.Fprintln(stderr, errs.Error())
			fmt.Fprintf(stderr, "%s: %d %s\n", path, len(errs), plural(len(errs), "problem"))
			return reportedError{}
		}
		return err
	}
	key := cfg.Cluster.KeyFile
	if _, err := os.Stat(key); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stderr, "warning: cluster key %s does not exist; nodes need it to run: create it with `ringway key generate %s`\n", key, key)
	} else {
		if _, err := config.ReadKey(key); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
			return reportedError{}
		}
		for _, w := range config.KeyWarnings(key) {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "ok: %s\n", cfg.Summary())
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func configImportCommand() *cli.Command {
	return &cli.Command{
		Name:  "import",
		Usage: "convert the patent's nodemap.cfg, vip.cfg and localmonitor.cfg to ringway YAML",
		Description: "nodemap.cfg: one node per line in ring order, its primary addresses separated by\n" +
			"spaces or commas. vip.cfg: blocks `VIRTUAL_IP <subnet address> { addresses }` (patent\n" +
			"Table 2). localmonitor.cfg: enableMonitor(), disableMonitor(), addMachine(IP).\n" +
			"# starts a comment in all three. See docs/config.md.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "nodemap", Usage: "the node map `FILE` (required)"},
			&cli.StringFlag{Name: "vip", Usage: "the VIP pool `FILE` (required)"},
			&cli.StringFlag{Name: "localmonitor", Usage: "the ping monitor `FILE` (optional)"},
			&cli.StringFlag{Name: "interfaces", Usage: "interface of each VIRTUAL_IP block, in order, comma separated (e.g. ext0,int0); default eth0,eth1,..."},
			&cli.IntFlag{Name: "prefix-len", Value: 24, Usage: "prefix length of VIRTUAL_IP subnet addresses written without /len"},
			&cli.StringFlag{Name: "cluster", Value: "ringway", Usage: "cluster name"},
			&cli.StringFlag{Name: "key-file", Value: config.DefaultConfig().Cluster.KeyFile, Usage: "cluster.key_file to write into the config"},
			&cli.StringFlag{Name: "node-ids", Usage: "node ids in nodemap order, comma separated; default n1,n2,..."},
			&cli.StringFlag{Name: "node", Usage: "node.id of the generated file; default the first node"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` instead of standard output"},
			&cli.BoolFlag{Name: "force", Usage: "overwrite the --output file if it exists"},
		},
		Action: importConfig,
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func importConfig(c *cli.Context) error {
	if c.NArg() != 0 {
		return usagef("config import takes no arguments (got %q); name the files with --nodemap and --vip", c.Args().First())
	}
	if c.String("nodemap") == "" || c.String("vip") == "" {
		return usagef("config import needs --nodemap FILE and --vip FILE")
	}
	opts := config.ImportOptions{
		ClusterName:      c.String("cluster"),
		KeyFile:          c.String("key-file"),
		NodeIDs:          splitList(c.String("node-ids")),
		NodeID:           c.String("node"),
		Interfaces:       splitList(c.String("interfaces")),
		PrefixLen:        c.Int("prefix-len"),
		NodemapName:      c.String("nodemap"),
		VIPName:          c.String("vip"),
		LocalmonitorName: c.String("localmonitor"),
	}
	nodemap, err := os.Open(opts.NodemapName)
	if err != nil {
		return err
	}
	defer nodemap.Close()
	vip, err := os.Open(opts.VIPName)
	if err != nil {
		return err
	}
	defer vip.Close()
	var lm io.Reader
	if opts.LocalmonitorName != "" {
		f, err := os.Open(opts.LocalmonitorName)
		if err != nil {
			return err
		}
		defer f.Close()
		lm = f
	}
	out, err := config.Import(nodemap, vip, lm, opts)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			fmt.Fprintln(c.App.ErrWriter, errs.Error())
			fmt.Fprintf(c.App.ErrWriter, "import failed: %d %s\n", len(errs), plural(len(errs), "problem"))
			return reportedError{}
		}
		return err
	}
	path := c.String("output")
	if path == "" {
		_, err := c.App.Writer.Write(out)
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if c.Bool("force") {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; pass --force to overwrite it", path)
		}
		return err
	}
	if _, err := f.Write(out); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "wrote %s; check it with `ringway config check %s`\n", path, path)
	return nil
}
