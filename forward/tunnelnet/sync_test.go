package tunnelnet

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/ringway/ringway/forward"
)

// TestSyncLoopback: two real filters joined by two drivers on loopback
// sockets. A flow created at node 1 is replicated to node 2 (its
// authoritative node or standby) and the batch acknowledged; the
// drivers count the replication datagrams both ways.
func TestSyncLoopback(t *testing.T) {
	a1 := netip.MustParseAddrPort("127.0.0.23:47948")
	a2 := netip.MustParseAddrPort("127.0.0.24:47948")
	var dk [forward.DirectoryKeyLen]byte
	dir := forward.NewDirectory(dk, []uint16{1, 2})
	filters := map[uint16]*forward.Filter{}
	drivers := map[uint16]*Driver{}
	clock := time.Now()
	now := func() int64 { return int64(time.Since(clock)) }
	for id, local := range map[uint16]netip.AddrPort{1: a1, 2: a2} {
		f, err := forward.New(forward.Config{Self: id, Default: forward.Accept,
			Links: []forward.Link{{Prefix: netip.MustParsePrefix("203.0.113.0/24")}, {Prefix: netip.MustParsePrefix("198.51.100.0/24")}}})
		if err != nil {
			t.Fatal(err)
		}
		f.SetDirectory(dir)
		filters[id] = f
		d, err := New(Config{Self: id, Key: key, Boot: uint64(time.Now().UnixNano()), Local: []netip.AddrPort{local},
			Peers: map[uint16][]netip.AddrPort{1: {a1}, 2: {a2}}, Core: f, Now: now, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Skipf("cannot bind %v on loopback: %v", local, err)
		}
		drivers[id] = d
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			<-done
		})
	}
	// A UDP datagram 203.0.113.10:5000 → 198.51.100.10:7000, accepted by
	// node 1's filter: node 2 is the flow's authoritative node or standby.
	ip := make([]byte, 28)
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], 28)
	copy(ip[12:], []byte{203, 0, 113, 10})
	copy(ip[16:], []byte{198, 51, 100, 10})
	binary.BigEndian.PutUint16(ip[20:], 5000)
	binary.BigEndian.PutUint16(ip[22:], 7000)
	binary.BigEndian.PutUint16(ip[24:], 8)
	if pass, _, _ := filters[1].Decide(ip, 0, 1, 0, 0, now()); !pass {
		t.Fatal("node 1 refused the first packet")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r1, r2 := filters[1].Stats().Sym.Repl, filters[2].Stats().Sym.Repl
		if r2.Replicas == 1 && r1.Acked == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not replicated: node 1 %+v, node 2 %+v", r1, r2)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// One batch, sent again if its ack was late (a loaded test host):
	// the driver counts every datagram, the filter its resends.
	s1, s2 := drivers[1].SyncStats(), drivers[2].SyncStats()
	sent := 1 + filters[1].Stats().Sym.Repl.Resends
	if s1.Batches[0] != sent || s1.Batches[1] != 0 || s2.Batches[1] == 0 || s2.Batches[1] > sent || s1.Acks[1] == 0 || s2.Acks[0] == 0 {
		t.Errorf("sync datagrams: node 1 %+v, node 2 %+v, %d batches sent", s1, s2, sent)
	}
	want := uint64(forward.DataOverhead + 12 + forward.SyncRecordLen)
	if s1.Bytes[0] != sent*want || s2.Bytes[1] != s2.Batches[1]*want {
		t.Errorf("batch bytes: sent %d, received %d, want %d a batch", s1.Bytes[0], s2.Bytes[1], want)
	}
}
