package ringnet

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func listenLoopback(t *testing.T) (*udpConn, netip.AddrPort) {
	t.Helper()
	c, err := ListenUDP(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	u := c.(*udpConn)
	if u.raw == nil {
		t.Fatal("IPv4 socket on Linux does not use rawUDP4")
	}
	return u, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), u.LocalPort())
}

// TestRawUDP4 checks the raw IPv4 path against what the net package would
// return: data, source address, truncation, no allocation (WriteTo and
// TryWriteTo), and the error after Close.
func TestRawUDP4(t *testing.T) {
	a, aAddr := listenLoopback(t)
	b, bAddr := listenLoopback(t)
	buf := make([]byte, MaxDatagram+1)

	msg := []byte("token frame")
	if n, err := a.WriteTo(msg, bAddr); err != nil || n != len(msg) {
		t.Fatalf("WriteTo = %d, %v; want %d, nil", n, err, len(msg))
	}
	n, src, err := b.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:n], msg) || src != aAddr {
		t.Fatalf("ReadFrom = %q from %v, %v; want %q from %v", buf[:n], src, err, msg, aAddr)
	}

	// A datagram longer than the buffer is truncated to it.
	big := bytes.Repeat([]byte{7}, 2000)
	if _, err := a.WriteTo(big, bAddr); err != nil {
		t.Fatal(err)
	}
	if n, _, err := b.ReadFrom(buf); err != nil || n != len(buf) {
		t.Fatalf("oversized datagram: ReadFrom = %d, %v; want %d (truncated), nil", n, err, len(buf))
	}

	allocs := testing.AllocsPerRun(100, func() {
		if _, err := a.WriteTo(msg, bAddr); err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.ReadFrom(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("WriteTo+ReadFrom allocate %v times per datagram, want 0", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		if sent, err := a.TryWriteTo(msg, bAddr); !sent || err != nil {
			t.Fatalf("TryWriteTo on an empty socket = %v, %v; want true, nil", sent, err)
		}
		if n, _, err := b.ReadFrom(buf); err != nil || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("ReadFrom after TryWriteTo = %q, %v; want %q", buf[:n], err, msg)
		}
	})
	if allocs != 0 {
		t.Errorf("TryWriteTo+ReadFrom allocate %v times per datagram, want 0", allocs)
	}

	// A reader blocked on an empty socket returns net.ErrClosed on Close.
	done := make(chan error, 1)
	go func() {
		_, _, err := b.ReadFrom(buf)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond) // let it block (the test passes either way)
	b.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReadFrom after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadFrom still blocked 5 s after Close")
	}
	if _, err := b.WriteTo(msg, aAddr); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteTo after Close = %v, want net.ErrClosed", err)
	}
}

// TestOSTimer checks the timerfd: it fires no earlier than set, a later
// set replaces an earlier one, a delay of zero or less fires at once, and
// stop ends a wait.
func TestOSTimer(t *testing.T) {
	tm, err := newOSTimer()
	if err != nil {
		t.Fatal(err)
	}
	defer tm.stop()
	ctx := context.Background()

	start := time.Now()
	tm.set(20 * time.Millisecond)
	if !tm.wait(ctx) {
		t.Fatal("wait = false, want true (fired)")
	}
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Errorf("fired after %v, want ≥ 20ms", el)
	}

	start = time.Now()
	tm.set(time.Millisecond)
	tm.set(30 * time.Millisecond) // replaces the 1 ms setting
	tm.wait(ctx)
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Errorf("re-armed timer fired after %v, want ≥ 30ms", el)
	}

	start = time.Now()
	tm.set(-time.Second)
	tm.wait(ctx)
	if el := time.Since(start); el > time.Second {
		t.Errorf("timer set in the past fired after %v, want at once", el)
	}

	tm.set(time.Hour)
	done := make(chan bool, 1)
	go func() { done <- tm.wait(ctx) }()
	time.Sleep(10 * time.Millisecond) // let it block (the test passes either way)
	tm.stop()
	select {
	case ok := <-done:
		if ok {
			t.Error("wait after stop = true, want false")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wait still blocked 5 s after stop")
	}
}
