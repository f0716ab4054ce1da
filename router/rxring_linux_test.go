package router

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRxRingReadsFrames sends frames over a veth pair in a scratch network
// namespace and reads them through the TPACKET_V2 ring: small frames from
// their ring slots, a frame larger than a slot whole through the socket
// queue (TP_STATUS_COPY) in its place in the order, and Read waits in the
// netpoller when the ring is empty and wakes for the next frame.
func TestRxRingReadsFrames(t *testing.T) {
	cfg := TestConfig()
	cfg.RxRing = ringBlockSize
	v := newVethLab(t, cfg, true) // its peer socket sends the frames
	l, tx := v.l, v.peer
	if l.rx[0].ring == nil {
		t.Fatal("no receive ring with RxRing set")
	}
	// IPv4 frames to rx0's MAC (the capture filter's test), the i-th with
	// i in its last byte.
	frame := func(size int, i byte) []byte {
		f := make([]byte, size)
		copy(f, l.mac)
		copy(f[6:], []byte{2, 0, 0, 0, 0, 1})
		f[12], f[13] = 0x08, 0x00
		f[ethHdrLen] = 0x45
		f[ethHdrLen+16] = 198 // destination 198.51.100.1: not a primary
		f[ethHdrLen+17] = 51
		f[ethHdrLen+18] = 100
		f[ethHdrLen+19] = 1
		f[size-1] = i
		return f
	}
	sizes := []int{60, 1514, rxRingFrameSize + 500, 60} // the third does not fit a slot
	bufs := make([][]byte, 8)
	for i := range bufs {
		bufs[i] = make([]byte, slotSize)
	}
	got := make([]int, 8)
	read := func() int {
		t.Helper()
		timer := time.AfterFunc(5*time.Second, func() { l.rx[0].Wake() })
		defer timer.Stop()
		n, err := l.rx[0].Read(bufs, got, 0)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	var want []int
	for i, s := range sizes {
		if _, err := unix.Write(tx, frame(s, byte(i))); err != nil {
			t.Fatal(err)
		}
		want = append(want, vnetHdrLen+s)
	}
	var seen []int
	for len(seen) < len(sizes) {
		n := read()
		if n == 0 {
			t.Fatalf("woken without frames after %d of %d", len(seen), len(sizes))
		}
		for i := range n {
			if last := bufs[i][got[i]-1]; int(last) != len(seen) {
				t.Errorf("frame %d: last byte %d, want %d (out of order?)", len(seen), last, len(seen))
			}
			seen = append(seen, got[i])
		}
	}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("sizes read %v, want %v (virtio-net header and frame)", seen, want)
	}
	// An empty ring: Read waits and wakes for the next frame.
	go func() {
		time.Sleep(50 * time.Millisecond)
		unix.Write(tx, frame(60, 9))
	}()
	if n := read(); n != 1 || got[0] != vnetHdrLen+60 || bufs[0][got[0]-1] != 9 {
		t.Errorf("after waiting: %d frames, first %d bytes, want 1 of %d", n, got[0], vnetHdrLen+60)
	}
	// The ring's Read allocates nothing.
	f := frame(60, 1)
	allocs := testing.AllocsPerRun(50, func() {
		unix.Write(tx, f)
		if n, err := l.rx[0].Read(bufs, got, 0); n != 1 || err != nil {
			t.Fatalf("read %d frames, %v; want 1", n, err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per Read, want 0", allocs)
	}
}
