package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// PingMisses is how many rounds in a row a target may leave unanswered
// before the node is unhealthy: one lost echo is not a broken path.
const PingMisses = 2

// Ping pings remote hosts or routers (the patent's localmonitor.cfg): one
// echo request to every target per interval. The node is unhealthy while
// every target has missed PingMisses rounds in a row (none answers: the
// node has lost the network beyond it), healthy again as soon as one
// answers.
type Ping struct {
	targets           []netip.Addr
	interval, timeout time.Duration
	log               *slog.Logger
	conn              *icmp.PacketConn

	healthy verdict
	mu      sync.Mutex
	failing []netip.Addr
	// next is a reload's new settings, adopted by Run before its next
	// round (Run's goroutine owns targets, interval and timeout).
	next atomic.Pointer[Ping]
}

// Reconfigure makes Run ping targets every interval, waiting timeout for
// the answers, from its next round on (a reload). A target kept keeps its
// count of missed rounds. Safe for concurrent use with Run.
func (p *Ping) Reconfigure(targets []netip.Addr, interval, timeout time.Duration) error {
	n := &Ping{interval: interval, timeout: timeout}
	for _, a := range targets {
		if a = a.Unmap(); !a.Is4() {
			return fmt.Errorf("ping monitor: target %s is not IPv4", a)
		}
		n.targets = append(n.targets, a)
	}
	if len(n.targets) == 0 || interval <= 0 || timeout <= 0 {
		return fmt.Errorf("ping monitor: %d targets, interval %v, timeout %v: need targets and positive times", len(n.targets), interval, timeout)
	}
	p.next.Store(n)
	return nil
}

// adopt takes the settings of the last Reconfigure, if any, forgets the
// misses of targets no longer pinged, and reports whether the interval
// changed.
func (p *Ping) adopt(misses map[netip.Addr]int) bool {
	n := p.next.Swap(nil)
	if n == nil {
		return false
	}
	changed := n.interval != p.interval
	p.targets, p.interval, p.timeout = n.targets, n.interval, n.timeout
	for a := range misses {
		if !slices.Contains(p.targets, a) {
			delete(misses, a)
		}
	}
	p.log.Info("ping monitor: new settings", "targets", p.targets, "interval", p.interval, "timeout", p.timeout)
	return changed
}

// NewPing opens the raw ICMP socket (root or CAP_NET_RAW), so that a node
// that cannot ping fails at start-up, and returns a monitor of the IPv4
// targets; it is healthy until the evidence of PingMisses rounds says
// otherwise. Run uses the socket and closes it.
func NewPing(targets []netip.Addr, interval, timeout time.Duration, log *slog.Logger) (*Ping, error) {
	p := &Ping{interval: interval, timeout: timeout, log: log}
	for _, a := range targets {
		if a = a.Unmap(); !a.Is4() {
			return nil, fmt.Errorf("ping monitor: target %s is not IPv4", a)
		}
		p.targets = append(p.targets, a)
	}
	conn, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("ping monitor: %w (it needs root or CAP_NET_RAW)", err)
	}
	// Only echo replies reach the socket: the rest of the host's ICMP
	// would fill its buffer between rounds.
	var f ipv4.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv4.ICMPTypeEchoReply)
	if err := conn.IPv4PacketConn().SetICMPFilter(&f); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ping monitor: ICMP filter: %w", err)
	}
	p.conn = conn
	p.healthy.init(true)
	return p, nil
}

// Close releases the socket when Run never ran.
func (p *Ping) Close() error { return p.conn.Close() }

// Healthy reports whether some target answers. It never blocks.
func (p *Ping) Healthy() bool { return p.healthy.ok.Load() }

// Changed receives a value after Healthy's answer changes (one value may
// stand for several changes). It never closes.
func (p *Ping) Changed() <-chan struct{} { return p.healthy.changed }

// Failing returns the targets that missed PingMisses rounds or more.
func (p *Ping) Failing() []netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.failing)
}

// Run pings until ctx ends, then closes the socket. It returns nil.
func (p *Ping) Run(ctx context.Context) error {
	conn := p.conn
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	id := os.Getpid() & 0xffff
	misses := make(map[netip.Addr]int, len(p.targets))
	t := time.NewTicker(p.interval)
	defer t.Stop()
	buf := make([]byte, 1500)
	for seq := 1; ; seq++ {
		if p.adopt(misses) {
			t.Reset(p.interval)
		}
		answered := p.round(conn, id, seq&0xffff, buf)
		if ctx.Err() != nil {
			return nil
		}
		for _, a := range p.targets {
			if answered[a] {
				misses[a] = 0
			} else {
				misses[a]++
			}
		}
		p.record(misses)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// round sends one echo request to every target and collects the replies
// that come back within the timeout.
func (p *Ping) round(conn *icmp.PacketConn, id, seq int, buf []byte) map[netip.Addr]bool {
	answered := make(map[netip.Addr]bool, len(p.targets))
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("ringway ping monitor")}}
	wire, err := msg.Marshal(nil)
	if err != nil {
		return answered
	}
	// Late replies of earlier rounds are of no use: drop them.
	_ = conn.SetReadDeadline(time.Now())
	for {
		if _, _, err := conn.ReadFrom(buf); err != nil {
			break
		}
	}
	for _, a := range p.targets {
		// A send error (no route, say) is an unanswered target.
		_, _ = conn.WriteTo(wire, &net.IPAddr{IP: a.AsSlice()})
	}
	_ = conn.SetReadDeadline(time.Now().Add(p.timeout))
	for len(answered) < len(p.targets) {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			break // the deadline, or the socket closed
		}
		rm, err := icmp.ParseMessage(1, buf[:n]) // 1: ICMP for IPv4
		if err != nil || rm.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		echo, ok := rm.Body.(*icmp.Echo)
		ip, ok2 := from.(*net.IPAddr)
		if !ok || !ok2 || echo.ID != id || echo.Seq != seq {
			continue // another process's echo, or a late reply
		}
		if a, ok := netip.AddrFromSlice(ip.IP.To4()); ok && slices.Contains(p.targets, a) {
			answered[a] = true
		}
	}
	return answered
}

// record updates the verdict from the miss counts and logs changes.
func (p *Ping) record(misses map[netip.Addr]int) {
	var failing []netip.Addr
	for _, a := range p.targets {
		if misses[a] >= PingMisses {
			failing = append(failing, a)
		}
	}
	p.mu.Lock()
	changed := !slices.Equal(failing, p.failing)
	p.failing = failing
	p.mu.Unlock()
	was := p.healthy.ok.Load()
	healthy := len(failing) < len(p.targets)
	p.healthy.set(healthy)
	switch {
	case was && !healthy:
		p.log.Warn("ping monitor: no target answers; this node gives up its VIPs", "targets", p.targets, "rounds", PingMisses)
	case !was && healthy:
		p.log.Info("ping monitor: a target answers again", "failing", failing)
	case changed && len(failing) > 0:
		p.log.Warn("ping monitor: some targets do not answer", "failing", failing)
	}
}
