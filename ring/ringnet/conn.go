package ringnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// Conn is one path's datagram socket, bound to this node's primary address on
// that path's subnet.
//
// ReadFrom blocks until a datagram arrives and copies it into b; a datagram
// longer than b is truncated and reported with n == len(b). After Close,
// ReadFrom and WriteTo return an error wrapping net.ErrClosed. ReadFrom and
// WriteTo may be called concurrently with each other.
type Conn interface {
	ReadFrom(b []byte) (n int, from netip.AddrPort, err error)
	WriteTo(b []byte, to netip.AddrPort) (int, error)
	Close() error
}

// TryWriter is implemented by a Conn that can send without waiting.
// TryWriteTo sends b to to as WriteTo does if the socket takes it at once,
// and reports sent == true; if the socket would make it wait (its send
// buffer is full) it sends nothing and returns sent == false with a nil
// error, at once. A Conn that cannot tell may always return false.
//
// The driver writes a path's datagrams on the goroutine that produced them
// while TryWriteTo takes them, and hands them to the path's sender
// goroutine (which calls WriteTo and may wait) when it does not, or when
// the Conn is no TryWriter: one goroutine handoff per datagram would cost
// a thread wakeup each (docs/ring.md, "CPU per node").
type TryWriter interface {
	TryWriteTo(b []byte, to netip.AddrPort) (sent bool, err error)
}

// ListenFunc opens the Conn for one local address. ListenUDP is the default;
// tests inject ringnettest.Network.Listen.
type ListenFunc func(local netip.AddrPort) (Conn, error)

// rcvBuf is the socket receive buffer asked for: a few hundred full datagrams,
// enough to ride out a scheduling hiccup of the receive goroutine or a
// wait for the core lock.
const rcvBuf = 1 << 20

// ListenUDP binds a UDP socket to exactly local (never a wildcard address).
// When the address is not configured on this host it returns an
// *AddrNotLocalError.
func ListenUDP(local netip.AddrPort) (Conn, error) {
	if !local.IsValid() || local.Addr().IsUnspecified() {
		return nil, fmt.Errorf("ring: refusing to bind %v: bind to a node's primary address only", local)
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(local))
	if err != nil {
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			return nil, &AddrNotLocalError{Addr: local.Addr(), Err: err}
		}
		return nil, fmt.Errorf("ring: bind %v: %w", local, err)
	}
	_ = c.SetReadBuffer(rcvBuf) // best effort: the kernel caps it at rmem_max
	u := &udpConn{c: c}
	if haveRawUDP4 && local.Addr().Is4() {
		// IPv4 sockets read and write through rawUDP4 (no scheduler
		// bookkeeping per datagram); IPv6 ones through the net package.
		if rc, err := c.SyscallConn(); err == nil {
			u.raw = newRawUDP4(rc)
		}
	}
	return u, nil
}

type udpConn struct {
	c   *net.UDPConn
	raw *rawUDP4 // IPv4 on Linux; nil: the net package
}

func (u *udpConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	if u.raw != nil {
		return u.raw.ReadFrom(b)
	}
	return u.c.ReadFromUDPAddrPort(b)
}

func (u *udpConn) WriteTo(b []byte, to netip.AddrPort) (int, error) {
	if u.raw != nil && to.Addr().Is4() {
		return u.raw.WriteTo(b, to)
	}
	return u.c.WriteToUDPAddrPort(b, to)
}

// TryWriteTo tries IPv4 through rawUDP4; the net package's IPv6 writes
// cannot be tried, so they always go to the path's sender goroutine.
func (u *udpConn) TryWriteTo(b []byte, to netip.AddrPort) (bool, error) {
	if u.raw != nil && to.Addr().Is4() {
		return u.raw.TryWriteTo(b, to)
	}
	return false, nil
}

var _ TryWriter = (*udpConn)(nil)

func (u *udpConn) Close() error { return u.c.Close() }

// LocalPort returns the bound port (useful after binding port 0).
func (u *udpConn) LocalPort() uint16 { return u.c.LocalAddr().(*net.UDPAddr).AddrPort().Port() }

// AddrNotLocalError reports that a configured primary address of this node is
// not an address of any interface of this host.
type AddrNotLocalError struct {
	Addr netip.Addr
	Node string // the node's id in the config, e.g. "n1"; may be empty
	Err  error
}

func (e *AddrNotLocalError) Error() string {
	node := e.Node
	if node == "" {
		node = "<this node>"
	}
	return fmt.Sprintf("address %v is not configured on any interface of this host: check nodes[%s].addresses", e.Addr, node)
}

func (e *AddrNotLocalError) Unwrap() error { return e.Err }
