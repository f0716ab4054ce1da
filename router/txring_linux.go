package router

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A TPACKET_V2 transmit ring (PACKET_TX_RING, Documentation/networking/
// packet_mmap.rst): the router writes frames into slots of a ring mapped
// into the process, marks them TP_STATUS_SEND_REQUEST and hands them all to
// the kernel with one send(2) per batch. With sendmmsg the kernel went
// through the whole sendmsg path for every message (the msghdr and iovec
// copied in, packet_sendmsg's checks, the vnet header copied and parsed);
// tpacket_snd walks the ring instead.
//
// Only frames that fit a slot and are not GSO super-frames go through the
// ring; the others (up to 64 KiB, from veth or virtio offloads) are sent with
// sendmmsg on the link's plain transmit socket, in order: the ring is kicked
// before them. Frames in the ring are sent whole in the skb's linear part
// (the virtio-net header's hdr_len is set to the frame's length, which
// tpacket_snd copies): otherwise the kernel maps the rest of the slot's page
// into the skb, and veth (__dev_forward_skb → skb_orphan_frags) copies it
// into a freshly allocated page for every frame, or a real NIC holds the
// slot until its transmit completion.
//
// A slot is the kernel's from the moment it is marked SEND_REQUEST until the
// skb built from it is freed (tpacket_destruct_skb marks it AVAILABLE). The
// kernel walks the ring from its own head, so the router fills slots in
// the same order; when the next slot is still in flight, the rest of the
// batch goes through sendmmsg rather than waiting.

// txRingFrameSize is one transmit slot: the tpacket2_hdr, then (at
// txRingData) the virtio-net header and a frame of up to txRingFrameMax
// bytes, enough for an MTU-sized (1500) Ethernet frame.
const (
	txRingFrameSize = 2048
	// txRingData is where tpacket_snd reads a frame in a TPACKET_V2 slot
	// without PACKET_TX_HAS_OFF: TPACKET2_HDRLEN − sizeof(sockaddr_ll).
	txRingData     = 32
	txRingFrameMax = txRingFrameSize - txRingData - vnetHdrLen
)

// txRing is the mapped transmit ring of one link's ring socket. mu is held
// by the Write that uses it (TryLock: a concurrent Write sends with
// sendmmsg instead); the link's txMu keeps close away from every Write.
type txRing struct {
	mu     sync.Mutex
	fd     int
	mem    []byte // nil once unmapped
	frames int
	next   int // the next slot to fill: the kernel's head between kicks
}

// newTxRing opens a transmit socket on the NIC (as openTxSocket) and gives
// it a TPACKET_V2 transmit ring of about size bytes, mapped.
func newTxRing(ifindex int, cfg *Config, size int) (*txRing, error) {
	fd, err := openTxSocket(ifindex, cfg)
	if err != nil {
		return nil, err
	}
	mem, frames, err := mapRing(fd, unix.PACKET_TX_RING, txRingFrameSize, size)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &txRing{fd: fd, mem: mem, frames: frames}, nil
}

func (r *txRing) hdr(i int) *unix.Tpacket2Hdr {
	return (*unix.Tpacket2Hdr)(unsafe.Pointer(&r.mem[i*txRingFrameSize]))
}

// fits reports whether frame b (virtio-net header first) goes through the
// ring: not a GSO super-frame, and small enough for a slot.
func txRingFits(b []byte) bool {
	return len(b) >= vnetHdrLen && len(b) <= vnetHdrLen+txRingFrameMax && !vnetIsGSO(b)
}

// put copies frame b (txRingFits) into the next slot and marks it for
// sending; it reports false, and copies nothing, when that slot is still
// the kernel's.
func (r *txRing) put(b []byte) bool {
	h := r.hdr(r.next)
	if atomic.LoadUint32(&h.Status)&(unix.TP_STATUS_SEND_REQUEST|unix.TP_STATUS_SENDING|unix.TP_STATUS_WRONG_FORMAT) != 0 {
		return false
	}
	at := r.next*txRingFrameSize + txRingData
	copy(r.mem[at:], b)
	// The whole frame in the skb's linear part (see above); at least
	// what __packet_snd_vnet_parse would make it for a partial checksum.
	binary.LittleEndian.PutUint16(r.mem[at+vnetOffHdrLen:], uint16(len(b)-vnetHdrLen))
	h.Len = uint32(len(b))
	atomic.StoreUint32(&h.Status, unix.TP_STATUS_SEND_REQUEST)
	if r.next++; r.next == r.frames {
		r.next = 0
	}
	return true
}

// kick sends the n slots filled since the last kick, the first at slot
// first, with one send(2). It returns how many of them the kernel took, in
// order; after an error the untaken slots are the router's again (their
// frames are not sent) and the next frame goes where the kernel stopped.
func (r *txRing) kick(first, n int) (int, error) {
	flags := uintptr(unix.MSG_DONTWAIT)
	done := 0 // slots taken when the waiting send last returned
	for {
		var e unix.Errno
		if n == 1 && flags != 0 {
			// One frame, not waiting: a raw system call. A counted one
			// wakes the runtime's sysmon thread when the node was idle,
			// a second wake-up on the latency path of every lone packet
			// (docs/forward.md "Where the tunnel hop's time goes"). A
			// batch stays counted: the kernel may deliver it for long,
			// and the scheduler must be free to hand our P off.
			_, _, e = unix.RawSyscall6(unix.SYS_SENDTO, uintptr(r.fd), 0, 0, flags, 0, 0)
		} else {
			_, _, e = unix.Syscall6(unix.SYS_SENDTO, uintptr(r.fd), 0, 0, flags, 0, 0)
		}
		if e == unix.EINTR {
			continue
		}
		taken := r.taken(first, n)
		if taken == n {
			return n, nil
		}
		if e == 0 && flags == 0 && taken > done {
			// The waiting send returned after some frames (a signal
			// ended its wait for room): it made progress, go on.
			done = taken
			continue
		}
		if (e == 0 || e == unix.EAGAIN || e == unix.ENOBUFS) && flags != 0 {
			// The socket's send buffer was full (tpacket_snd stops
			// without an error once it sent something): wait for
			// room as a blocking sendmmsg would.
			flags = 0
			continue
		}
		for i := taken; i < n; i++ {
			atomic.StoreUint32(&r.hdr((first+i)%r.frames).Status, unix.TP_STATUS_AVAILABLE)
		}
		r.next = (first + taken) % r.frames
		if e == 0 {
			e = unix.EIO
		}
		return taken, e
	}
}

// taken counts the slots, of the n from first, that the kernel took: it
// walks them in order and stops at the first still marked for sending (or
// refused), where its head is.
func (r *txRing) taken(first, n int) int {
	for i := range n {
		st := atomic.LoadUint32(&r.hdr((first + i) % r.frames).Status)
		if st&(unix.TP_STATUS_SEND_REQUEST|unix.TP_STATUS_WRONG_FORMAT) != 0 {
			return i
		}
	}
	return n
}

// close unmaps the ring and closes its socket (the link's txMu held).
func (r *txRing) close() error {
	if r.mem == nil {
		return nil
	}
	err := unmapRing(&r.mem)
	if e := unix.Close(r.fd); err == nil {
		err = e
	}
	r.fd = -1
	return err
}
