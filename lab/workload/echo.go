package workload

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// EchoPort is the UDP port the lab's echo server listens on by convention.
const EchoPort = 7

// EchoServer echoes every UDP datagram back to its sender from a kernel UDP
// socket (the server end of the fail-over stream).
type EchoServer struct {
	conn   *net.UDPConn
	echoed atomic.Uint64
	wg     sync.WaitGroup
}

// ListenEcho binds a UDP socket to addr inside namespace ns and starts
// echoing at once. Close stops it.
func ListenEcho(r Netns, ns string, addr netip.AddrPort) (*EchoServer, error) {
	var conn *net.UDPConn
	err := in(r, ns, func() error {
		var err error
		conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("echo server on %s in %s: %w", addr, ns, err)
	}
	// A large receive buffer rides out scheduling hiccups on a busy machine.
	conn.SetReadBuffer(1 << 20)
	e := &EchoServer{conn: conn}
	e.wg.Add(1)
	go e.serve()
	return e, nil
}

func (e *EchoServer) serve() {
	defer e.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ECONNREFUSED from an earlier reply's ICMP error
		}
		if _, err := e.conn.WriteToUDPAddrPort(buf[:n], from); err == nil {
			e.echoed.Add(1)
		}
	}
}

// Addr returns the bound address.
func (e *EchoServer) Addr() netip.AddrPort {
	return e.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Echoed returns the number of datagrams echoed so far.
func (e *EchoServer) Echoed() uint64 { return e.echoed.Load() }

// Close stops the server and waits for its goroutine.
func (e *EchoServer) Close() error {
	err := e.conn.Close()
	e.wg.Wait()
	return err
}
