package workload_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/lab/workload"
)

// kernelLab builds a 2-node lab where node 1 routes with the kernel and holds
// the gateway addresses .91: the workload's reference path, no ringway.
func kernelLab(t *testing.T) *lab.Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("workload lab tests build network namespaces: run as root (CI does)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := lab.Build(ctx, lab.Spec{
		Prefix:   "wlt" + randSuffix(),
		Nodes:    2,
		StateDir: t.TempDir(),
		Node: func(i int) lab.NodeOptions {
			if i == 1 {
				return lab.KernelGateway(i)
			}
			return lab.DefaultNode(i)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab Close: %v", err)
		}
	})
	return l
}

func randSuffix() string {
	var b [3]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func TestThroughKernelGateway(t *testing.T) {
	l := kernelLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	echo, err := workload.ListenEcho(l, l.Server(), netip.AddrPortFrom(lab.ServerAddr, workload.EchoPort))
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	cfg := workload.DefaultStreamConfig(netip.AddrPortFrom(lab.ServerAddr, workload.EchoPort))

	t.Run("no loss", func(t *testing.T) {
		s, err := workload.StartStream(ctx, l, l.Client(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.WaitFlowing(ctx, 500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		r := s.Stop()
		if r.Sent < 300 || r.Lost != 0 || r.Received != r.Sent {
			t.Errorf("sent %d received %d lost %d, want no loss through the kernel gateway", r.Sent, r.Received, r.Lost)
		}
		t.Logf("steady: sent %d, longest gap %v (sender pause %v), max RTT %v", r.Sent, r.LongestGap, r.LongestSendGap, r.MaxRTT)
	})

	t.Run("cut makes a gap as long as the cut", func(t *testing.T) {
		s, err := workload.StartStream(ctx, l, l.Client(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Stop()
		if err := s.WaitFlowing(ctx, 200*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		const outage = 400 * time.Millisecond
		if err := l.Cut(1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(outage) // the outage under test, not a synchronisation
		if err := l.Heal(1); err != nil {
			t.Fatal(err)
		}
		if err := s.WaitFlowing(ctx, 200*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		r := s.Stop()
		if r.LongestGap < outage-50*time.Millisecond || r.LongestGap > outage+500*time.Millisecond {
			t.Errorf("longest gap %v for a %v cut", r.LongestGap, outage)
		}
		if r.Lost < 250 || r.Lost > 900 {
			t.Errorf("lost %d datagrams in a %v cut at 1 kHz", r.Lost, outage)
		}
		listed := false
		for _, g := range r.Gaps {
			listed = listed || g == r.Longest
		}
		if !listed || r.Longest.Len != r.LongestGap || !r.Longest.From.Before(r.Longest.To) {
			t.Errorf("gap list %v does not hold the longest gap %+v", r.Gaps, r.Longest)
		}
		t.Logf("cut %v: longest gap %v, lost %d of %d", outage, r.LongestGap, r.Lost, r.Sent)
	})

	t.Run("transfer survives a cut", func(t *testing.T) {
		srv, err := workload.ListenTransfer(l, l.Server(), netip.AddrPortFrom(lab.ServerAddr, workload.TransferPort))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		// 2 MB at 4 MB/s: still running when the cut starts.
		tr, err := workload.StartTransfer(ctx, l, l.Client(), workload.TransferConfig{
			Server: srv.Addr(), Bytes: 2 << 20, Rate: 4 << 20, Seed: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if err := l.Cut(1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		select {
		case <-tr.Done():
			t.Fatal("transfer finished during the cut: the test proves nothing")
		default:
		}
		if err := l.Heal(1); err != nil {
			t.Fatal(err)
		}
		rep, err := tr.Wait()
		if err != nil {
			t.Fatalf("transfer across the cut: %v", err)
		}
		if rep.Bytes != 2<<20 {
			t.Errorf("transferred %d bytes, want %d", rep.Bytes, 2<<20)
		}
		t.Logf("2 MB across a 300 ms cut in %v", rep.Duration)
	})

	t.Run("arp observer sees one answer per address, and a conflict", func(t *testing.T) {
		mac1, err := l.HardwareAddr(l.Node(1), lab.ExtIf)
		if err != nil {
			t.Fatal(err)
		}
		mac2, err := l.HardwareAddr(l.Node(2), lab.ExtIf)
		if err != nil {
			t.Fatal(err)
		}
		vip, other := lab.ExtGateway, netip.MustParseAddr("203.0.113.92")
		o, err := workload.StartARP(ctx, l, l.Client(), workload.ARPConfig{
			Interface: lab.HostIf, Probe: []netip.Addr{vip, other}, ProbeInterval: 20 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		waitFor(t, func() bool { return len(o.Answerers(vip, time.Time{}, time.Time{})) > 0 })
		mid := time.Now()
		if got := o.Answerers(vip, time.Time{}, mid); !sameMACs(got, mac1) {
			t.Errorf("answerers of %s = %v, want only node 1 (%v)", vip, got, mac1)
		}
		if got := o.Answerers(other, time.Time{}, mid); len(got) != 0 {
			t.Errorf("answerers of unowned %s = %v, want none", other, got)
		}
		// Node 2 takes .91 as well: the observer must see two owners.
		pfx := netip.PrefixFrom(vip, 24)
		if err := l.AddAddr(l.Node(2), lab.ExtIf, pfx); err != nil {
			t.Fatal(err)
		}
		defer l.DelAddr(l.Node(2), lab.ExtIf, pfx)
		waitFor(t, func() bool { return len(o.Answerers(vip, mid, time.Time{})) == 2 })
		if got := o.Answerers(vip, mid, time.Time{}); !sameMACs(got, mac1, mac2) {
			t.Errorf("answerers after the conflict = %v, want %v and %v", got, mac1, mac2)
		}
		o.Close()
		for _, e := range o.Events() {
			if e.IP == lab.ClientAddr {
				t.Errorf("observer recorded the client's own ARP: %+v", e)
			}
		}
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 3 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sameMACs(got []net.HardwareAddr, want ...net.HardwareAddr) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || bytes.Equal(g, w)
		}
		if !found {
			return false
		}
	}
	return true
}

// TestARPObserverContext: cancelling the context stops the observer (no
// busy loop on a closed socket) and Close afterwards is clean.
func TestARPObserverContext(t *testing.T) {
	l := kernelLab(t)
	ctx, cancel := context.WithCancel(context.Background())
	o, err := workload.StartARP(ctx, l, l.Client(), workload.ARPConfig{Probe: []netip.Addr{lab.ExtGateway}, ProbeInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(o.Events()) > 0 })
	cancel()
	done := make(chan error, 1)
	go func() { done <- o.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung after the context was cancelled")
	}
}
