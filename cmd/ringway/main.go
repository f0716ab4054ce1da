// Command ringway is the single ringway binary: every subcommand lives
// here. Run `ringway --help` for the list.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// Exit codes.
const (
	exitOK      = 0 // the command did what was asked
	exitFailure = 1 // it could not (bad config, I/O error, ...)
	exitUsage   = 2 // the command line itself is wrong
)

// commands is every subcommand of ringway. A new command is one more line.
func commands() []*cli.Command {
	return []*cli.Command{
		configCommand(),
		keyCommand(),
		runCommand(),
		statusCommand(),
		vipCommand(),
		nodeCommand(),
		clusterCommand(),
		flowsCommand(),
		labCommand(),
		versionCommand(),
		completionCommand(),
		reloadCommand(),
	}
}

func main() {
	os.Exit(run(context.Background(), os.Args, os.Stdout, os.Stderr))
}

// usageError is a mistake on the command line (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{msg: fmt.Sprintf(format, args...)}
}

// reportedError is a failure whose details the command already printed
// (exit 1, nothing more to say).
type reportedError struct{}

func (reportedError) Error() string { return "failed" }

// run runs ringway with args (args[0] is the program name) and returns the
// exit code. Tests call it in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := newApp(stdout, stderr).RunContext(ctx, args)
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "ringway: %v\n", err)
		return exitUsage
	case errors.As(err, new(reportedError)):
		return exitFailure
	default:
		fmt.Fprintf(stderr, "ringway: %v\n", err)
		return exitFailure
	}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:  "ringway",
		Usage: "a distributed gateway: Linux nodes sharing pools of virtual IP addresses",
		Description: "ringway turns a handful of Linux boxes into one gateway. The nodes pass a token\n" +
			"around a ring, share a table of virtual IP addresses (VIPs), and move a VIP to a\n" +
			"survivor within a fraction of a second when its node fails.\n\n" +
			"Every node reads the same YAML config (docs/config.md); start with\n" +
			"`ringway config check examples/lab/ringway.yaml`.\n\n" +
			"Shell completion: `ringway completion bash|zsh|fish`.\n\n" +
			"Exit status: 0 ok, 1 failure, 2 wrong usage.",
		Commands:    commands(),
		Writer:      stdout,
		ErrWriter:   stderr,
		HideVersion: true,
		// `ringway ... --generate-bash-completion` lists the words that
		// may follow: the completion scripts (completion.go) ask it.
		EnableBashCompletion: true,
		// run maps errors to exit codes; the library must not exit itself.
		ExitErrHandler: func(*cli.Context, error) {},
	}
	app.OnUsageError = onUsageError
	app.Action = func(c *cli.Context) error {
		if c.Args().Present() {
			return groupAction(c)
		}
		if err := cli.ShowAppHelp(c); err != nil {
			return err
		}
		return usagef("no command given; see above")
	}
	prepare(app.Commands)
	return app
}

// prepare gives every command the same usage-error handling, and every
// command with subcommands an action that rejects unknown ones.
func prepare(cmds []*cli.Command) {
	for _, c := range cmds {
		c.OnUsageError = onUsageError
		if len(c.Subcommands) > 0 && c.Action == nil {
			c.Action = groupAction
		}
		prepare(c.Subcommands)
	}
}

func onUsageError(c *cli.Context, err error, _ bool) error {
	return usagef("%v; see `%s --help`", err, c.Command.HelpName)
}

// groupAction runs for `ringway` or a command group (`ringway config`)
// without a known subcommand: it names the problem and shows the help.
func groupAction(c *cli.Context) error {
	name := strings.TrimPrefix(c.Command.HelpName, c.App.Name)
	name = strings.TrimSpace(name)
	if c.Args().Present() {
		var known []string
		for _, s := range c.Command.Subcommands {
			if s.Name != "help" && !s.Hidden {
				known = append(known, s.Name)
			}
		}
		if name == "" {
			return usagef("unknown command %q; the commands are %s", c.Args().First(), strings.Join(known, ", "))
		}
		return usagef("%s: unknown command %q; the commands are %s", name, c.Args().First(), strings.Join(known, ", "))
	}
	if err := cli.ShowSubcommandHelp(c); err != nil {
		return err
	}
	return usagef("%s needs a command (%s); see above", name, "one of the COMMANDS listed")
}
