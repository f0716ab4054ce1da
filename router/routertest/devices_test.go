package routertest

import (
	"errors"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestFakeLinkContract checks the fake against the router.LinkDevice
// contract the router relies on: a Read returns what is waiting (at least
// one), reports a cut frame by its full size, Write copies in order, and
// both return net.ErrClosed after Close.
func TestFakeLinkContract(t *testing.T) {
	f := NewFakeLink(net.HardwareAddr{2, 0, 0, 0, 1, 1}, 1500)
	go func() {
		f.In <- []byte("first")
		f.In <- []byte("second frame, too long")
	}()
	bufs := [][]byte{make([]byte, 2+8), make([]byte, 2+8)}
	sizes := make([]int, 2)
	type frame struct {
		Data string
		Size int
	}
	var got []frame
	for len(got) < 2 {
		n, err := f.Read(bufs, sizes, 2)
		if err != nil || n < 1 {
			t.Fatalf("Read = %d, %v", n, err)
		}
		for i := range n {
			got = append(got, frame{string(bufs[i][2 : 2+min(sizes[i], 8)]), sizes[i]})
		}
	}
	// The cut frame reports its full length, more than the 8 bytes it got.
	if diff := cmp.Diff([]frame{{"first", 5}, {"second f", 22}}, got); diff != "" {
		t.Errorf("frames read (-want +got):\n%s", diff)
	}
	if n, err := f.Write([][]byte{[]byte("xxab"), []byte("xxcd")}, 2); n != 2 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if a, b := string(<-f.Out), string(<-f.Out); a != "ab" || b != "cd" {
		t.Errorf("written %q %q, want \"ab\" \"cd\"", a, b)
	}
	f.Close()
	f.Close()
	if _, err := f.Read(bufs, sizes, 0); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
	if n, err := f.Write([][]byte{[]byte("x")}, 0); n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %d, %v, want 0, net.ErrClosed", n, err)
	}
	if len(f.Readers()) != 1 || f.MTU() != 1500 || f.HardwareAddr().String() != "02:00:00:00:01:01" {
		t.Errorf("readers %d, MTU %d, MAC %v", len(f.Readers()), f.MTU(), f.HardwareAddr())
	}
}

func TestFakeTUNClose(t *testing.T) {
	f := NewFakeTUN()
	done := make(chan error)
	go func() {
		_, err := f.Read([][]byte{make([]byte, 64)}, []int{0}, 0)
		done <- err
	}()
	f.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("blocked Read after Close: %v, want net.ErrClosed", err)
	}
}
