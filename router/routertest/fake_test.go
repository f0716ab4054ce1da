package routertest

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
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
