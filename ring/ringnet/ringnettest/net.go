// Package ringnettest provides an in-memory, channel-backed datagram network
// for testing ringnet drivers without sockets, for instance inside a
// testing/synctest bubble where time is virtual.
package ringnettest

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/ringway/ringway/ring/ringnet"
)

// Inbox is the number of datagrams a Conn buffers; more are dropped, as a
// full socket buffer would.
const Inbox = 512

// Network connects Conns by address. The zero value is not usable: use New.
type Network struct {
	mu     sync.Mutex
	conns  map[netip.AddrPort]*Conn
	filter func(from, to netip.AddrPort) bool
	tap    func(from, to netip.AddrPort, b []byte)
	held   map[netip.AddrPort]chan struct{} // closed on release
}

// New returns an empty network that delivers everything.
func New() *Network {
	return &Network{conns: map[netip.AddrPort]*Conn{}, held: map[netip.AddrPort]chan struct{}{}}
}

var _ ringnet.ListenFunc = New().Listen

// Listen binds a Conn to local. Binding an address twice fails with
// EADDRINUSE, as a socket would.
func (n *Network) Listen(local netip.AddrPort) (ringnet.Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.conns[local]; ok {
		return nil, fmt.Errorf("listen %v: %w", local, syscall.EADDRINUSE)
	}
	c := &Conn{net: n, local: local, inbox: make(chan datagram, Inbox), closed: make(chan struct{})}
	n.conns[local] = c
	return c, nil
}

// SetFilter installs f: a datagram from → to is delivered only when f returns
// true. nil delivers everything.
func (n *Network) SetFilter(f func(from, to netip.AddrPort) bool) {
	n.mu.Lock()
	n.filter = f
	n.mu.Unlock()
}

// SetTap installs f, called with a copy of every datagram written (delivered
// or not). nil removes it.
func (n *Network) SetTap(f func(from, to netip.AddrPort, b []byte)) {
	n.mu.Lock()
	n.tap = f
	n.mu.Unlock()
}

// HoldWrites makes writes from local wait, as they do on a socket whose send
// buffer stays full (a dead link, a stuck NIC queue), until release is
// called: WriteTo blocks until then, or until its Conn is closed (it then
// returns net.ErrClosed), and TryWriteTo reports that it would block. The
// hold applies to whichever Conn is bound at local, now or later. release
// is safe to call more than once.
func (n *Network) HoldWrites(local netip.AddrPort) (release func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ch, ok := n.held[local]
	if !ok {
		ch = make(chan struct{})
		n.held[local] = ch
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			n.mu.Lock()
			if n.held[local] == ch {
				delete(n.held, local)
			}
			n.mu.Unlock()
			close(ch)
		})
	}
}

// Inject delivers b to the Conn bound at to as if sent from from, bypassing
// the filter: an attacker on the wire. It reports whether a Conn took it.
func (n *Network) Inject(from, to netip.AddrPort, b []byte) bool {
	n.mu.Lock()
	c := n.conns[to]
	n.mu.Unlock()
	return c != nil && c.deliver(from, b)
}

type datagram struct {
	from netip.AddrPort
	b    []byte
}

// Conn is one bound address of a Network. It implements ringnet.Conn.
type Conn struct {
	net    *Network
	local  netip.AddrPort
	inbox  chan datagram
	closed chan struct{}
	once   sync.Once
}

var (
	_ ringnet.Conn      = (*Conn)(nil)
	_ ringnet.TryWriter = (*Conn)(nil)
)

func (c *Conn) deliver(from netip.AddrPort, b []byte) bool {
	select {
	case <-c.closed:
		return false
	default:
	}
	select {
	case c.inbox <- datagram{from: from, b: append([]byte(nil), b...)}:
		return true
	default:
		return false
	}
}

// ReadFrom returns the next datagram, truncated to len(b).
func (c *Conn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	select {
	case d := <-c.inbox:
		return copy(b, d.b), d.from, nil
	case <-c.closed:
		return 0, netip.AddrPort{}, fmt.Errorf("read %v: %w", c.local, net.ErrClosed)
	}
}

// WriteTo sends a copy of b to the Conn bound at to, if any and if the
// filter allows; like UDP, a lost datagram is no error. While the network
// holds this Conn's writes (HoldWrites) it waits.
func (c *Conn) WriteTo(b []byte, to netip.AddrPort) (int, error) {
	for {
		c.net.mu.Lock()
		held := c.net.held[c.local]
		c.net.mu.Unlock()
		if held == nil {
			break
		}
		select {
		case <-held:
		case <-c.closed:
			return 0, fmt.Errorf("write %v: %w", c.local, net.ErrClosed)
		}
	}
	return c.write(b, to)
}

// TryWriteTo is WriteTo without the wait: while the network holds this
// Conn's writes it sends nothing and returns false.
func (c *Conn) TryWriteTo(b []byte, to netip.AddrPort) (sent bool, err error) {
	c.net.mu.Lock()
	held := c.net.held[c.local]
	c.net.mu.Unlock()
	if held != nil {
		select {
		case <-c.closed:
			return false, fmt.Errorf("write %v: %w", c.local, net.ErrClosed)
		default:
			return false, nil
		}
	}
	_, err = c.write(b, to)
	return err == nil, err
}

func (c *Conn) write(b []byte, to netip.AddrPort) (int, error) {
	select {
	case <-c.closed:
		return 0, fmt.Errorf("write %v: %w", c.local, net.ErrClosed)
	default:
	}
	c.net.mu.Lock()
	dst, f, tap := c.net.conns[to], c.net.filter, c.net.tap
	c.net.mu.Unlock()
	if tap != nil {
		tap(c.local, to, append([]byte(nil), b...))
	}
	if dst != nil && (f == nil || f(c.local, to)) {
		dst.deliver(c.local, b)
	}
	return len(b), nil
}

// Close unbinds the address; pending and later reads return net.ErrClosed.
func (c *Conn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.net.mu.Lock()
		if c.net.conns[c.local] == c {
			delete(c.net.conns, c.local)
		}
		c.net.mu.Unlock()
	})
	return nil
}
