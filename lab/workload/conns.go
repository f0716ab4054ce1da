package workload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Long-lived TCP connections for stateful fail-over (issue 12): a TCP
// echo server, and a client holding many connections to it, each writing
// a small message every Every and reading its echo. Each connection
// records the longest time between two echoes it got back (its stall),
// and whether it ended, and how: a reset (ECONNRESET) is what a gateway
// that lost a connection's state sends or causes.

// TCPEchoServer echoes every TCP connection's bytes back and counts the
// connections it saw end with a reset.
type TCPEchoServer struct {
	ln     net.Listener
	resets atomic.Uint64
	errs   atomic.Uint64
	conns  atomic.Uint64
	wg     sync.WaitGroup
}

// ListenTCPEcho listens on addr inside namespace ns and serves at once.
func ListenTCPEcho(r Netns, ns string, addr netip.AddrPort) (*TCPEchoServer, error) {
	var ln net.Listener
	if err := in(r, ns, func() (err error) {
		ln, err = net.Listen("tcp4", addr.String())
		return err
	}); err != nil {
		return nil, fmt.Errorf("TCP echo server on %s in %s: %w", addr, ns, err)
	}
	s := &TCPEchoServer{ln: ln}
	s.wg.Go(s.serve)
	return s, nil
}

func (s *TCPEchoServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.conns.Add(1)
		s.wg.Go(func() {
			defer c.Close()
			_, err := io.Copy(c, c)
			switch {
			case isReset(err):
				s.resets.Add(1)
			case err != nil && !errors.Is(err, net.ErrClosed):
				s.errs.Add(1)
			}
		})
	}
}

// Resets returns how many connections the server saw reset.
func (s *TCPEchoServer) Resets() uint64 { return s.resets.Load() }

// Accepted returns how many connections the server accepted.
func (s *TCPEchoServer) Accepted() uint64 { return s.conns.Load() }

// Close stops listening; connections already open stay until their
// client closes them.
func (s *TCPEchoServer) Close() error { return s.ln.Close() }

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// ConnsConfig configures StartConns.
type ConnsConfig struct {
	Server netip.AddrPort
	N      int           // connections
	Every  time.Duration // between two messages on one connection; default 20 ms
	Size   int           // message bytes; default 16
	// Dial bounds each connection's setup; default 5 s. Setup is paced
	// (DialEvery apart) so the filter's deferral and the tunnel see a
	// steady stream, not a burst.
	Dial      time.Duration
	DialEvery time.Duration // default 2 ms
}

// ConnResult is what one connection saw.
type ConnResult struct {
	Echoes  int           // messages echoed back whole
	Stall   time.Duration // the longest time between two echoes (or from the start to the first, or from the last to the end)
	Err     error         // why it ended early; nil while it lives
	Reset   bool          // Err is a reset
	Corrupt bool          // an echo did not match what was sent
	Quiet   time.Duration // since its last echo, at the snapshot
}

// Conns is a set of long-lived TCP echo connections.
type Conns struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	res    []ConnResult
	last   []time.Time
}

// StartConns opens cfg.N connections from namespace ns to cfg.Server and
// runs the exchanges until Stop. It fails if a connection cannot be
// opened.
func StartConns(ctx context.Context, r Netns, ns string, cfg ConnsConfig) (*Conns, error) {
	if cfg.Every <= 0 {
		cfg.Every = 20 * time.Millisecond
	}
	if cfg.Size <= 0 {
		cfg.Size = 16
	}
	if cfg.Dial <= 0 {
		cfg.Dial = 5 * time.Second
	}
	if cfg.DialEvery <= 0 {
		cfg.DialEvery = 2 * time.Millisecond
	}
	var conns []net.Conn
	for i := range cfg.N {
		var c net.Conn
		if err := in(r, ns, func() (err error) {
			c, err = net.DialTimeout("tcp4", cfg.Server.String(), cfg.Dial)
			return err
		}); err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, fmt.Errorf("connection %d of %d to %v: %w", i+1, cfg.N, cfg.Server, err)
		}
		conns = append(conns, c)
		time.Sleep(cfg.DialEvery)
	}
	ctx, cancel := context.WithCancel(ctx)
	cs := &Conns{cancel: cancel, res: make([]ConnResult, cfg.N), last: make([]time.Time, cfg.N)}
	start := time.Now()
	for i, c := range conns {
		cs.last[i] = start
		cs.wg.Go(func() { cs.run(ctx, i, c, cfg) })
	}
	return cs, nil
}

func (cs *Conns) run(ctx context.Context, i int, c net.Conn, cfg ConnsConfig) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	msg, got := make([]byte, cfg.Size), make([]byte, cfg.Size)
	t := time.NewTicker(cfg.Every)
	defer t.Stop()
	for n := 0; ; n++ {
		for j := range msg {
			msg[j] = byte(n + i + j)
		}
		_, err := c.Write(msg)
		if err == nil {
			_, err = io.ReadFull(c, got)
		}
		now := time.Now()
		cs.mu.Lock()
		r := &cs.res[i]
		if err != nil {
			if ctx.Err() == nil {
				r.Err, r.Reset = err, isReset(err)
			}
			r.Stall = max(r.Stall, now.Sub(cs.last[i]))
			cs.mu.Unlock()
			return
		}
		if !slices.Equal(msg, got) {
			r.Corrupt = true
		}
		r.Echoes++
		r.Stall = max(r.Stall, now.Sub(cs.last[i]))
		cs.last[i] = now
		cs.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Snapshot returns every connection's result so far (stalls up to now
// included).
func (cs *Conns) Snapshot() []ConnResult {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := slices.Clone(cs.res)
	now := time.Now()
	for i := range out {
		out[i].Quiet = now.Sub(cs.last[i])
		if out[i].Err == nil {
			out[i].Stall = max(out[i].Stall, out[i].Quiet)
		}
	}
	return out
}

// ResetStalls forgets the stalls seen so far (those of the setup), so
// the next ones measure a fault.
func (cs *Conns) ResetStalls() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for i := range cs.res {
		cs.res[i].Stall = 0
	}
}

// Stop ends the exchanges, closes the connections and returns the
// results.
func (cs *Conns) Stop() []ConnResult {
	res := cs.Snapshot()
	cs.cancel()
	cs.wg.Wait()
	return res
}

// ConnsSummary sums results: connections alive (no error, an echo
// within the quiet limit), ended by a reset, ended otherwise or silent,
// corrupted, and the stalls sorted.
type ConnsSummary struct {
	N, Alive, Resets, Failed, Corrupt int
	Stalls                            []time.Duration // sorted, one per connection
}

// Summarize sums results; a connection without an echo for longer than
// quiet is not alive.
func Summarize(res []ConnResult, quiet time.Duration) ConnsSummary {
	s := ConnsSummary{N: len(res)}
	for _, r := range res {
		switch {
		case r.Reset:
			s.Resets++
		case r.Err != nil || r.Quiet > quiet:
			s.Failed++
		default:
			s.Alive++
		}
		if r.Corrupt {
			s.Corrupt++
		}
		s.Stalls = append(s.Stalls, r.Stall)
	}
	slices.Sort(s.Stalls)
	return s
}

// Quantile returns the q-quantile (0..1) of the stalls; 0 when none.
func (s ConnsSummary) Quantile(q float64) time.Duration {
	if len(s.Stalls) == 0 {
		return 0
	}
	return s.Stalls[min(len(s.Stalls)-1, int(q*float64(len(s.Stalls))))]
}
