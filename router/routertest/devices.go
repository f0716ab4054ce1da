package routertest

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/ringway/ringway/router"
)

var (
	_ router.LinkDevice  = (*FakeLink)(nil)
	_ router.MTUNotifier = (*FakeLink)(nil)
	_ router.FrameReader = (*FakeLink)(nil)
	_ router.TUNDevice   = (*FakeTUN)(nil)
	_ router.Waker       = (*FakeLink)(nil)
	_ router.Waker       = (*FakeTUN)(nil)
)

// VnetFrame returns frame behind a zero virtio-net header (no partial
// checksum, no GSO): how a frame or packet crosses the router's devices.
func VnetFrame(frame []byte) []byte {
	return append(make([]byte, router.VirtioNetHdrLen, router.VirtioNetHdrLen+len(frame)), frame...)
}

// pipe is the channel pair behind both fakes.
type pipe struct {
	// In carries what the router reads: a test sends a virtio-net header
	// and a frame (VnetFrame). Unbuffered: a send returns once a Read
	// took it.
	In chan []byte
	// Out carries copies of what the router writes, virtio-net header
	// first, in order. Buffered (1024); a Write blocks when it is full.
	Out chan []byte

	done chan struct{}
	once sync.Once
	wake chan struct{} // capacity 1: Wake's pending wakeup
}

func newPipe() pipe {
	return pipe{In: make(chan []byte), Out: make(chan []byte, 1024), done: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// Read waits for the first buffer on In, then takes what else is waiting,
// up to len(bufs). A buffer longer than bufs[i][offset:] is cut, and
// sizes[i] is its full length. After Wake it returns 0, nil without
// waiting (once per Wake, or once for several Wakes before it). It returns
// net.ErrClosed after Close.
func (p *pipe) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var b []byte
	select {
	case b = <-p.In:
	case <-p.wake:
		return 0, nil
	case <-p.done:
		return 0, net.ErrClosed
	}
	n := 0
	for {
		copy(bufs[n][offset:], b)
		sizes[n] = len(b)
		n++
		if n == len(bufs) {
			return n, nil
		}
		select {
		case b = <-p.In:
		default:
			return n, nil
		}
	}
}

// Write sends a copy of each bufs[i][offset:] on Out. It returns
// net.ErrClosed after Close.
func (p *pipe) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		select {
		case <-p.done:
			return i, net.ErrClosed
		default:
		}
		select {
		case p.Out <- append([]byte(nil), b[offset:]...):
		case <-p.done:
			return i, net.ErrClosed
		}
	}
	return len(bufs), nil
}

// Wake makes the blocked or the next Read return 0, nil (router.Waker).
func (p *pipe) Wake() error {
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

// Close makes Read and Write return net.ErrClosed. Safe to call twice.
func (p *pipe) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}

// Closed is closed by Close.
func (p *pipe) Closed() <-chan struct{} { return p.done }

// FakeLink is a channel-backed capture NIC (router.LinkDevice) with one
// receive queue: the router reads what a test sends on In and writes to Out.
// It needs no privileges.
type FakeLink struct {
	pipe
	mac        net.HardwareAddr
	mtu        atomic.Int64
	mtuChanged chan struct{}
	readers    []router.FrameReader
}

// NewFakeLink returns a FakeLink with hardware address mac and the given MTU
// (bytes of IPv4 packet).
func NewFakeLink(mac net.HardwareAddr, mtu int) *FakeLink {
	f := &FakeLink{pipe: newPipe(), mac: mac, mtuChanged: make(chan struct{}, 1)}
	f.mtu.Store(int64(mtu))
	f.readers = []router.FrameReader{f}
	return f
}

// Readers returns the fake itself: one receive queue.
func (f *FakeLink) Readers() []router.FrameReader { return f.readers }

// HardwareAddr returns the address given to NewFakeLink.
func (f *FakeLink) HardwareAddr() net.HardwareAddr { return f.mac }

// MTU returns the MTU given to NewFakeLink or the last SetMTU.
func (f *FakeLink) MTU() int { return int(f.mtu.Load()) }

// SetMTU changes the MTU, as `ip link set mtu` does, and signals
// MTUChanged; the router applies it shortly after (from its next packet once
// its MTU goroutine ran).
func (f *FakeLink) SetMTU(mtu int) {
	f.mtu.Store(int64(mtu))
	select {
	case f.mtuChanged <- struct{}{}:
	default:
	}
}

// MTUChanged receives a value after each SetMTU (router.MTUNotifier).
func (f *FakeLink) MTUChanged() <-chan struct{} { return f.mtuChanged }

// Dropped is always 0: a full fake blocks its sender instead of dropping.
func (f *FakeLink) Dropped() uint64 { return 0 }

// FakeTUN is a channel-backed local-delivery device (router.TUNDevice): the
// router reads the OS's packets from In and delivers to Out, each a
// virtio-net header and an IPv4 packet.
type FakeTUN struct {
	pipe
}

// NewFakeTUN returns an open FakeTUN.
func NewFakeTUN() *FakeTUN { return &FakeTUN{pipe: newPipe()} }
