package router

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A TPACKET_V2 receive ring (packet_mmap, Documentation/networking/
// packet_mmap.rst): the kernel copies each captured frame into a slot of a
// ring mapped into the process, and the receive goroutine takes frames from
// it without a system call; it waits in the netpoller only when the ring is
// empty. With recvmmsg the router thread spent 0.7-0.8 µs per 64-byte
// frame in the call (the skb queue lock, the copy, freeing the clone), and
// the kernel cloned an skb per frame to queue it (docs/router.md,
// "Where the time goes").
//
// TPACKET_V2, not V3: a V3 block is handed over when it is full or its
// retire timer (at least 1 ms) fires, so at low rates every frame would wait
// up to a millisecond; V2 hands over each frame. Frames up to
// rxRingFrameMax bytes (MTU-sized ones included) stay in the ring; larger
// ones (GSO super-frames from veth or virtio offloads, up to 64 KiB) are
// queued whole on the socket as well (PACKET_COPY_THRESH) and the ring slot
// only says so (TP_STATUS_COPY): the reader takes them with recvfrom, in
// ring order.

// rxRingFrameSize is one ring slot: the tpacket2_hdr, the virtio-net header
// and a frame of up to rxRingFrameMax bytes.
const rxRingFrameSize = 2048

// rxRing is the mapped receive ring of one socket, read by one goroutine.
type rxRing struct {
	// mu is read-held while the ring is read; unmap takes it, so the
	// memory is never unmapped under a reader.
	mu     sync.RWMutex
	mem    []byte // nil once unmapped
	frames int
	next   int // the slot the next frame will be in
}

// mapRing switches the packet socket fd to TPACKET_V2, gives it a ring
// (opt: PACKET_RX_RING or PACKET_TX_RING) of about size bytes in slots of
// frameSize bytes, and maps it. It returns the mapped ring and its number
// of slots; fd is left open.
func mapRing(fd, opt, frameSize, size int) (mem []byte, frames int, err error) {
	name, what := "PACKET_RX_RING", "receive"
	if opt == unix.PACKET_TX_RING {
		name, what = "PACKET_TX_RING", "transmit"
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return nil, 0, fmt.Errorf("set PACKET_VERSION: %w", err)
	}
	blocks := max(1, size/ringBlockSize)
	frames = blocks * (ringBlockSize / frameSize)
	req := unix.TpacketReq{Block_size: ringBlockSize, Block_nr: uint32(blocks), Frame_size: uint32(frameSize), Frame_nr: uint32(frames)}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, opt, &req); err != nil {
		return nil, 0, fmt.Errorf("set %s: %w", name, err)
	}
	mem, err = unix.Mmap(fd, 0, blocks*ringBlockSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, 0, fmt.Errorf("mmap %s ring: %w", what, err)
	}
	return mem, frames, nil
}

// unmapRing unmaps *mem (mapRing's) unless it is nil already, and sets it
// to nil.
func unmapRing(mem *[]byte) error {
	if *mem == nil {
		return nil
	}
	err := unix.Munmap(*mem)
	*mem = nil
	return err
}

// newRxRing switches the socket fd (PACKET_VNET_HDR already set) to
// TPACKET_V2, sets up a ring of about size bytes and maps it. Frames that
// were queued on the socket before the ring existed are discarded, and only
// then are large frames queued beside the ring (PACKET_COPY_THRESH), so
// every TP_STATUS_COPY slot has its frame next in the socket queue. (A
// large frame arriving in between is cut to its slot and dropped as
// truncated.)
func newRxRing(fd int, size int) (*rxRing, error) {
	mem, frames, err := mapRing(fd, unix.PACKET_RX_RING, rxRingFrameSize, size)
	if err != nil {
		return nil, err
	}
	var b [1]byte
	for {
		if _, _, err := unix.Recvfrom(fd, b[:], unix.MSG_DONTWAIT|unix.MSG_TRUNC); err != nil {
			break // EAGAIN: the socket queue is empty
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_COPY_THRESH, 1); err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("set PACKET_COPY_THRESH: %w", err)
	}
	return &rxRing{mem: mem, frames: frames}, nil
}

// read moves up to len(bufs) frames from the ring into bufs[i][offset:] as
// FrameReader.Read does, and gives their slots back to the kernel. It
// returns 0 when the ring is empty, and false when it is unmapped.
func (r *rxRing) read(fd uintptr, bufs [][]byte, sizes []int, offset int) (int, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.mem == nil {
		return 0, false
	}
	n := 0
	for n < len(bufs) {
		slot := r.mem[r.next*rxRingFrameSize : (r.next+1)*rxRingFrameSize]
		h := (*unix.Tpacket2Hdr)(unsafe.Pointer(&slot[0]))
		st := atomic.LoadUint32(&h.Status)
		if st&unix.TP_STATUS_USER == 0 {
			break
		}
		b := bufs[n][offset:]
		size := len(b) + 1 // cut (FrameReader.Read's marker), unless read below
		if st&unix.TP_STATUS_COPY != 0 {
			// The whole frame is queued on the socket.
			m, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
			if e == 0 && int(m) <= len(b) {
				size = int(m)
			}
		} else if mac := int(h.Mac); mac >= vnetHdrLen && h.Len == h.Snaplen && mac+int(h.Snaplen) <= len(slot) {
			size = copy(b, slot[mac-vnetHdrLen:mac+int(h.Snaplen)])
			if size < vnetHdrLen+int(h.Snaplen) {
				size = len(b) + 1
			}
		}
		sizes[n] = size
		n++
		atomic.StoreUint32(&h.Status, unix.TP_STATUS_KERNEL)
		if r.next++; r.next == r.frames {
			r.next = 0
		}
	}
	return n, true
}

// unmap releases the ring; later reads report it closed.
func (r *rxRing) unmap() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return unmapRing(&r.mem)
}
