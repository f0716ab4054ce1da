package monitor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Command is the application monitor with an operator's check: a shell
// command run every interval (with the interval as its time limit); exit
// status 0 means healthy. The node is unhealthy from the first failure to
// the next success.
type Command struct {
	command  string
	interval time.Duration
	log      *slog.Logger

	outcome
}

// NewCommand returns a monitor running command with /bin/sh -c; it is
// healthy until a run fails.
func NewCommand(command string, interval time.Duration, log *slog.Logger) *Command {
	c := &Command{command: command, interval: interval, log: log}
	c.healthy.init(true)
	return c
}

// Run runs the check every interval until ctx ends.
func (c *Command) Run(ctx context.Context) error {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		failure := c.once(ctx)
		if ctx.Err() != nil {
			return nil // a check killed by the shutdown says nothing
		}
		c.record(failure)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// once runs the command and says why it failed ("" for success).
func (c *Command) once(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, c.interval)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", c.command)
	// A check that hangs is killed with everything it started (its own
	// process group), and its output is not waited for much longer.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if cmd.Process != nil {
		// Whatever the check left behind goes with it.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		return "" // exit status 0 (a child it left kept the output open)
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("no result within %v", c.interval)
	}
	msg := err.Error()
	if s := strings.TrimSpace(out.String()); s != "" {
		if len(s) > 200 {
			s = s[:200] + "..."
		}
		msg += ": " + s
	}
	return msg
}

func (c *Command) record(failure string) {
	was := c.outcome.record(failure)
	switch {
	case was && failure != "":
		c.log.Warn("application monitor: check failed; this node gives up its VIPs", "command", c.command, "failure", failure)
	case !was && failure == "":
		c.log.Info("application monitor: check passes again", "command", c.command)
	}
}
