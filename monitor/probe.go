package monitor

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/ringway/ringway/router"
)

// Prober is the data plane as the built-in application check sees it.
// *router.Router implements it.
type Prober interface {
	// Probe has every packet worker decide synthetic probes on its own
	// goroutine and returns one result per worker once all answered or
	// ctx ended; router.ErrNotRunning while the data plane does not run.
	Probe(ctx context.Context) ([]router.ProbeResult, error)
}

// Probe is the built-in application monitor (the patent's "dummy
// packets"; monitors.application without a command): every interval it
// asks the router to probe every packet worker (router.Router.Probe) and
// is unhealthy while a worker fails, that is, does not answer within the
// interval (wedged: a process that is alive but forwards nothing) or
// decides a probe otherwise than it must (a forward probe not forwarded,
// a spoofed probe passed by the filter). The node is unhealthy from the
// first failing round to the next passing one, as with Command.
type Probe struct {
	p        Prober
	interval time.Duration
	log      *slog.Logger

	outcome
}

// NewProbe returns a monitor probing p every interval (also the time
// limit of each round); it is healthy until a round fails.
func NewProbe(p Prober, interval time.Duration, log *slog.Logger) *Probe {
	c := &Probe{p: p, interval: interval, log: log}
	c.healthy.init(true)
	return c
}

// Run probes every interval until ctx ends.
func (c *Probe) Run(ctx context.Context) error {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		failure, decided := c.once(ctx)
		if ctx.Err() != nil {
			return nil // a round cut short by the shutdown says nothing
		}
		if decided {
			c.record(failure)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// once runs one round and says why it failed ("" for success); decided is
// false when the router does not run (not yet, or no longer: the node
// stops with it), which says nothing about the workers.
func (c *Probe) once(ctx context.Context) (failure string, decided bool) {
	ctx, cancel := context.WithTimeout(ctx, c.interval)
	defer cancel()
	res, err := c.p.Probe(ctx)
	if errors.Is(err, router.ErrNotRunning) {
		return "", false
	}
	if err != nil {
		return err.Error(), true
	}
	var fails []string
	for _, r := range res {
		if r.Failure != "" {
			fails = append(fails, r.Worker+": "+r.Failure)
		}
	}
	return strings.Join(fails, "; "), true
}

func (c *Probe) record(failure string) {
	was := c.outcome.record(failure)
	switch {
	case was && failure != "":
		c.log.Warn("application monitor: the data plane check failed; this node gives up its VIPs", "failure", failure)
	case !was && failure == "":
		c.log.Info("application monitor: the data plane check passes again")
	}
}
