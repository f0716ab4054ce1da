package ringnet

import (
	"net"
	"net/netip"
	"testing"
)

// sinkConn takes every write at once and counts it.
type sinkConn struct{ n int }

func (c *sinkConn) ReadFrom([]byte) (int, netip.AddrPort, error) {
	return 0, netip.AddrPort{}, net.ErrClosed
}
func (c *sinkConn) WriteTo(b []byte, _ netip.AddrPort) (int, error) { c.n++; return len(b), nil }
func (c *sinkConn) TryWriteTo(b []byte, _ netip.AddrPort) (bool, error) {
	c.n++
	return true, nil
}
func (c *sinkConn) Close() error { return nil }

// TestSendAllocs pins the send path at zero allocations per datagram: queue
// (under the core lock), then seal and write on the same goroutine.
func TestSendAllocs(t *testing.T) {
	conn := &sinkConn{}
	cfg := TestConfig()
	cfg.Self, cfg.Key = 1, make([]byte, KeyLen)
	cfg.Nodes = [][]netip.AddrPort{
		{netip.MustParseAddrPort("192.0.2.1:9441")},
		{netip.MustParseAddrPort("192.0.2.2:9441")},
	}
	cfg.Listen = func(netip.AddrPort) (Conn, error) { return conn, nil }
	d, err := New(cfg, nopCore{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	payload := make([]byte, 200)
	send := func() {
		d.queue(Packet{To: 2, Path: 0, Data: payload})
		d.push()
	}
	send() // the queue grows to its first size
	allocs := testing.AllocsPerRun(100, send)
	if allocs != 0 {
		t.Errorf("queue+push allocate %v times per datagram, want 0", allocs)
	}
	if s := d.Stats(); conn.n != 102 || s.TxDatagrams != 102 || s.TxErrors != 0 {
		t.Errorf("written %d, counted %d sent and %d failed; want 102, 102, 0", conn.n, s.TxDatagrams, s.TxErrors)
	}
}

type nopCore struct{}

func (nopCore) Step(NodeID, int, []byte) error { return nil }
func (nopCore) Tick()                          {}
func (nopCore) HasReady() bool                 { return false }
func (nopCore) Ready() Ready                   { return Ready{} }
func (nopCore) Leave()                         {}
