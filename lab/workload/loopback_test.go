package workload

import (
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var loopback = netip.MustParseAddrPort("127.0.0.1:0")

// TestStreamLoopback runs the stream against the echo server in the test's
// own namespace: every datagram comes back, the gap stays small.
func TestStreamLoopback(t *testing.T) {
	e, err := ListenEcho(nil, "", loopback)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := StartStream(ctx, nil, "", StreamConfig{Server: e.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitFlowing(ctx, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	r := s.Stop()
	if r.Sent < 50 || r.Received != r.Sent || r.Lost != 0 || r.Duplicates != 0 {
		t.Errorf("report = sent %d received %d lost %d dup %d, want all echoed", r.Sent, r.Received, r.Lost, r.Duplicates)
	}
	if e.Echoed() != r.Sent {
		t.Errorf("server echoed %d, client sent %d", e.Echoed(), r.Sent)
	}
	// Generous bound for a loaded 2-core CI machine; the real check is the
	// outage test in lab_test.go, where the gap must match the cut.
	if r.LongestGap <= 0 || r.LongestGap > 150*time.Millisecond {
		t.Errorf("longest gap %v on loopback", r.LongestGap)
	}
	if r2 := s.Stop(); r2.Sent != r.Sent {
		t.Errorf("second Stop gave a different report: %d vs %d sent", r2.Sent, r.Sent)
	}
}

// TestStreamNoServer: with nobody echoing, everything is lost and the gap is
// the whole stream.
func TestStreamNoServer(t *testing.T) {
	sink, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(loopback)) // swallows, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	s, err := StartStream(context.Background(), nil, "", StreamConfig{Server: sink.LocalAddr().(*net.UDPAddr).AddrPort(), Drain: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Snapshot().Sent < 30 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	r := s.Stop()
	if r.Received != 0 || r.Lost != r.Sent || r.Sent < 30 {
		t.Errorf("sent %d received %d lost %d, want everything lost", r.Sent, r.Received, r.Lost)
	}
	if want := r.End.Sub(r.Start); r.LongestGap != want {
		t.Errorf("longest gap %v, want the whole stream %v", r.LongestGap, want)
	}
}

func TestTransferLoopback(t *testing.T) {
	srv, err := ListenTransfer(nil, "", loopback)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := StartTransfer(ctx, nil, "", TransferConfig{Server: srv.Addr(), Bytes: 3<<20 + 5, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := tr.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Bytes != 3<<20+5 || tr.Sent() != rep.Bytes {
		t.Errorf("report %d bytes, sent %d, want %d", rep.Bytes, tr.Sent(), 3<<20+5)
	}
	srv.Close()
	res := srv.Results()
	if len(res) != 1 || res[0].Err != nil || res[0].Bytes != rep.Bytes {
		t.Errorf("server results = %+v, want one clean transfer of %d bytes", res, rep.Bytes)
	}
}

// TestTransferDetectsCorruption sends a wrong digest by hand: the server
// must report the mismatch, and answer with its own digest.
func TestTransferDetectsCorruption(t *testing.T) {
	srv, err := ListenTransfer(nil, "", loopback)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := net.Dial("tcp4", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("hello, gateway")
	hb, _ := transferHeader{Len: int64(len(data))}.MarshalBinary()
	wrong := sha256.Sum256([]byte("something else"))
	c.Write(append(append(hb, data...), wrong[:]...))
	ans := make([]byte, 33)
	if _, err := io.ReadFull(c, ans); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if right := sha256.Sum256(data); ans[0] != 1 || [32]byte(ans[1:]) != right {
		t.Errorf("answer status %d digest %x, want 1 and the digest of the data", ans[0], ans[1:9])
	}
	srv.Close()
	res := srv.Results()
	if len(res) != 1 || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "mismatch") {
		t.Errorf("server results = %+v, want one mismatch", res)
	}
}

func TestTransferCancel(t *testing.T) {
	srv, err := ListenTransfer(nil, "", loopback)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	tr, err := StartTransfer(ctx, nil, "", TransferConfig{Server: srv.Addr(), Bytes: 1 << 30, Rate: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := tr.Wait(); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("Wait after cancel: %v, want context canceled", err)
	}
}
