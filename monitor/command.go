package monitor

import (
	"github.com/ringway/ringway/internal/rtsched"

	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync/atomic"
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
	cred     *syscall.Credential // nil: the node's own user

	// next is a reload's new settings, adopted by Run before its next
	// check (Run's goroutine owns command, interval and cred).
	next atomic.Pointer[Command]

	outcome
}

// Reconfigure makes Run use command and interval from its next check on
// (a reload), run as uid, gid and groups when runAs, else as the node's
// own user. Safe for concurrent use with Run.
func (c *Command) Reconfigure(command string, interval time.Duration, runAs bool, uid, gid uint32, groups []uint32) {
	n := &Command{command: command, interval: interval}
	if runAs {
		n.cred = &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}
	}
	c.next.Store(n)
}

// adopt takes the settings of the last Reconfigure, if any, and reports
// whether the interval changed.
func (c *Command) adopt() bool {
	n := c.next.Swap(nil)
	if n == nil {
		return false
	}
	changed := n.interval != c.interval
	c.command, c.interval, c.cred = n.command, n.interval, n.cred
	c.log.Info("application monitor: new settings", "command", c.command, "interval", c.interval, "as_user", c.cred != nil)
	return changed
}

// NewCommand returns a monitor running command with /bin/sh -c; it is
// healthy until a run fails.
func NewCommand(command string, interval time.Duration, log *slog.Logger) *Command {
	c := &Command{command: command, interval: interval, log: log}
	c.healthy.init(true)
	return c
}

// RunAs makes the check run as uid, gid with supplementary groups (the
// operator's monitors.application.user) instead of the node's own user.
// The node must be able to switch (root, or CAP_SETUID and CAP_SETGID).
// Call it before Run.
func (c *Command) RunAs(uid, gid uint32, groups []uint32) {
	c.cred = &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}
}

// MaxOutput bounds what a check's output may take in memory: the first
// MaxOutput bytes are kept (the log quotes at most 200 of them), the rest
// is counted and dropped, however much the check writes.
const MaxOutput = 4096

// boundedBuffer keeps the first MaxOutput bytes written to it.
type boundedBuffer struct {
	b       bytes.Buffer
	dropped int64
}

func (w *boundedBuffer) Write(p []byte) (int, error) {
	room := MaxOutput - w.b.Len()
	if room >= len(p) {
		return w.b.Write(p)
	}
	if room > 0 {
		w.b.Write(p[:room])
	}
	w.dropped += int64(len(p) - max(room, 0))
	return len(p), nil
}

// Run runs the check every interval until ctx ends.
func (c *Command) Run(ctx context.Context) error {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		if c.adopt() {
			t.Reset(c.interval)
		}
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
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.cred}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var out boundedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Under normal scheduling even when the node runs real-time
	// (ring.realtime_priority): a check must not outrank the ring.
	err := rtsched.Start(cmd)
	if err == nil {
		err = cmd.Wait()
	}
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
	if s := strings.TrimSpace(out.b.String()); s != "" {
		if len(s) > 200 || out.dropped > 0 {
			s = s[:min(len(s), 200)] + "..."
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
