package routertest

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestFakeDiffs(t *testing.T) {
	f := NewFake()
	cmpAddr := cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
	acq, rel := f.SetOwned(addrs("203.0.113.92", "203.0.113.91"))
	if diff := cmp.Diff(addrs("203.0.113.91", "203.0.113.92"), acq, cmpAddr); diff != "" || rel != nil {
		t.Fatalf("first set: acquired (-want +got):\n%s released %v", diff, rel)
	}
	acq, rel = f.SetOwned(addrs("203.0.113.92", "203.0.113.93"))
	if diff := cmp.Diff(Change{Owned: addrs("203.0.113.92", "203.0.113.93"), Acquired: addrs("203.0.113.93"), Released: addrs("203.0.113.91")},
		Change{Owned: f.Owned(), Acquired: acq, Released: rel}, cmpAddr); diff != "" {
		t.Fatalf("second set (-want +got):\n%s", diff)
	}
	if got := len(f.Changes); got != 2 {
		t.Fatalf("%d changes recorded, want 2", got)
	}
	done := make(chan error)
	go func() { done <- f.Run(context.Background()) }()
	f.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Run after Close: %v, want net.ErrClosed", err)
	}
}

func TestFakeAnnounceAndStopped(t *testing.T) {
	f := NewFake()
	f.Announce(addrs("203.0.113.91"))
	f.Announce(nil)
	if diff := cmp.Diff([][]netip.Addr{addrs("203.0.113.91"), nil}, f.Announced(),
		cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("announcements (-want +got):\n%s", diff)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.Run(ctx) }()
	select {
	case <-f.Stopped():
		t.Fatal("Stopped closed while Run runs")
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v, want nil", err)
	}
	<-f.Stopped()
}
