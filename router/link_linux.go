package router

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// slotSize is one receive buffer: the virtio-net header, then a frame of up
// to 64 KiB (a GSO super-frame handed over by veth/virtio offloads).
const slotSize = vnetHdrLen + ethHdrLen + 65535 + 1

// link is one capture NIC: an AF_PACKET socket bound to ETH_P_ALL.
type link struct {
	info linkInfo
	rx   []rxSock // receive sockets, one per receive goroutine (PACKET_FANOUT_HASH when several)
	// txfd is a second AF_PACKET socket, bound to the NIC with protocol 0
	// (it receives nothing), blocking and kept out of the netpoller. Sending
	// on an rx socket woke the netpoller for every transmitted frame: the skb
	// destructor calls sk_write_space, which wakes epoll waiters on the
	// socket (perf: sock_def_write_space, ~4 % of all CPU in a TCP run).
	txfd int
}

// captureFilter accepts ARP to our MAC or broadcast, and IPv4 to our MAC
// unless it is addressed to one of the node's primary addresses; everything
// else stays in the kernel (it is the kernel's, or noise). Traffic to a
// primary address is the kernel's too (the ring's datagrams, management,
// ssh): filtering it here spares the router a wakeup per ring datagram.
func captureFilter(mac MAC, primaries []netip.Addr) ([]bpf.RawInstruction, error) {
	if len(primaries) > 64 {
		return nil, fmt.Errorf("%d primary addresses; the capture filter takes at most 64", len(primaries))
	}
	hi := uint32(mac[0])<<24 | uint32(mac[1])<<16 | uint32(mac[2])<<8 | uint32(mac[3])
	lo := uint32(mac[4])<<8 | uint32(mac[5])
	const primaryAt = 14 // the first primary-address test
	accept := primaryAt + len(primaries)
	drop := accept + 1
	// skip returns the jump offset from instruction at to instruction target.
	skip := func(at, target int) uint8 { return uint8(target - at - 1) }
	prog := []bpf.Instruction{
		/* 0 */ bpf.LoadAbsolute{Off: 12, Size: 2}, // EtherType
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: ethTypeARP, SkipFalse: skip(1, 6)},
		/* 2 */ bpf.LoadAbsolute{Off: 0, Size: 4}, // ARP: broadcast destination?
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0xffffffff, SkipFalse: skip(3, 7)},
		/* 4 */ bpf.LoadAbsolute{Off: 4, Size: 2},
		/* 5 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0xffff, SkipTrue: skip(5, accept), SkipFalse: skip(5, 7)},
		/* 6 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: ethTypeIPv4, SkipFalse: skip(6, drop)},
		/* 7 */ bpf.LoadAbsolute{Off: 0, Size: 4}, // destination is our MAC?
		/* 8 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: hi, SkipFalse: skip(8, drop)},
		/* 9 */ bpf.LoadAbsolute{Off: 4, Size: 2},
		/* 10 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: lo, SkipFalse: skip(10, drop)},
		/* 11 */ bpf.LoadAbsolute{Off: 12, Size: 2}, // ARP to our MAC: accept
		/* 12 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: ethTypeARP, SkipTrue: skip(12, accept)},
		/* 13 */ bpf.LoadAbsolute{Off: ethHdrLen + 16, Size: 4}, // IPv4 destination address
	}
	for i, a := range primaries {
		b := a.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: v, SkipTrue: skip(primaryAt+i, drop)})
	}
	prog = append(prog, bpf.RetConstant{Val: 0x40000}, bpf.RetConstant{Val: 0}) // accept, drop
	return bpf.Assemble(prog)
}

// openLink opens the capture socket of one NIC in the calling thread's
// network namespace.
func openLink(index int, name string, cfg *Config, primaries []netip.Addr) (*link, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w (is the interface up in this namespace?)", name, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("open %s: not an Ethernet interface (hardware address %v)", name, ifi.HardwareAddr)
	}
	mac := MAC(ifi.HardwareAddr)
	filter, err := captureFilter(mac, primaries)
	if err != nil {
		return nil, fmt.Errorf("open %s: assemble BPF: %w", name, err)
	}
	l := &link{info: linkInfo{index: index, name: name, mac: mac, mtu: ifi.MTU}, txfd: -1}
	if l.info.mtu <= 0 {
		l.info.mtu = 1500
	}
	// One fanout group per link and process; ids are per network namespace.
	group := uint16(os.Getpid()*31+ifi.Index*7919) | 1
	for q := 0; q < cfg.RxQueues; q++ {
		rx, err := openRx(ifi, filter, cfg, group)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
		l.rx = append(l.rx, rx)
	}
	txfd, err := openTxSocket(ifi.Index, cfg)
	if err != nil {
		l.close()
		return nil, fmt.Errorf("open %s: transmit socket: %w", name, err)
	}
	l.txfd = txfd
	return l, nil
}

// rxSock is one receive socket of a link, waiting in the Go netpoller.
type rxSock struct {
	conn *packet.Conn
	rc   syscall.RawConn
}

// openRx opens one receive socket: ETH_P_ALL (a socket bound to ETH_P_IP
// saw nothing once the nftables ingress drop was in place; ETH_P_ALL taps
// run before it, DESIGN.md), the BPF filter, virtio-net headers, no copies of
// our own transmissions, a large receive buffer, and with several receive
// goroutines a PACKET_FANOUT_HASH group so each flow stays on one goroutine
// (in order). A fanout group ignores outgoing frames only by its own flag:
// PACKET_IGNORE_OUTGOING on a member socket does not apply to the group.
func openRx(ifi *net.Interface, filter []bpf.RawInstruction, cfg *Config, group uint16) (rxSock, error) {
	conn, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: filter})
	if err != nil {
		return rxSock{}, fmt.Errorf("AF_PACKET socket: %w (ringway needs root or CAP_NET_RAW)", err)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return rxSock{}, err
	}
	opts := []struct {
		level, opt, val int
		what            string
	}{
		{unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1, "PACKET_VNET_HDR"},
		{unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1, "PACKET_IGNORE_OUTGOING"},
		{unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, cfg.RcvBuf, "SO_RCVBUFFORCE"},
	}
	if cfg.RxQueues > 1 {
		opts = append(opts, struct {
			level, opt, val int
			what            string
		}{unix.SOL_PACKET, unix.PACKET_FANOUT, int(group) | (unix.PACKET_FANOUT_HASH|unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING)<<16, "PACKET_FANOUT"})
	}
	for _, o := range opts {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), o.level, o.opt, o.val) }); err != nil {
			serr = err
		}
		if serr != nil {
			conn.Close()
			return rxSock{}, fmt.Errorf("set %s: %w", o.what, serr)
		}
	}
	return rxSock{conn: conn, rc: rc}, nil
}

// openTxSocket opens the blocking transmit socket of a NIC: virtio-net
// headers on, optional qdisc bypass, bound to the NIC with protocol 0 so the
// kernel delivers nothing to it.
func openTxSocket(ifindex int, cfg *Config) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	opts := [][3]int{
		{unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1},
		{unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4 << 20},
	}
	if cfg.QdiscBypass {
		opts = append(opts, [3]int{unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1})
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o[0], o[1], o[2]); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("setsockopt %d/%d: %w", o[0], o[1], err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind: %w", err)
	}
	return fd, nil
}

func (l *link) close() error {
	var err error
	for _, rx := range l.rx {
		if e := rx.conn.Close(); err == nil {
			err = e
		}
	}
	l.rx = nil
	if l.txfd >= 0 {
		if e := unix.Close(l.txfd); err == nil {
			err = e
		}
		l.txfd = -1
	}
	return err
}

// rxBatch is a set of receive slots for recvmmsg, reused for every call; the
// slots stay valid until the next call.
type rxBatch struct {
	bufs [][]byte
	iovs []unix.Iovec
	msgs []unix.Mmsghdr
	n    int
	err  syscall.Errno
	fn   func(fd uintptr) bool
}

func newRxBatch(n int) *rxBatch {
	b := &rxBatch{bufs: make([][]byte, n), iovs: make([]unix.Iovec, n), msgs: make([]unix.Mmsghdr, n)}
	mem := make([]byte, n*slotSize)
	for i := range b.bufs {
		b.bufs[i] = mem[i*slotSize : (i+1)*slotSize : (i+1)*slotSize]
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(slotSize)
		b.msgs[i].Hdr.Iov = &b.iovs[i]
		b.msgs[i].Hdr.SetIovlen(1)
	}
	// Built once: a closure per call would allocate on the hot path.
	// RawSyscall: MSG_DONTWAIT never blocks, and a counted Syscall would
	// wake the runtime's sysmon thread from its idle sleep on every read
	// (a fifth of an idle node's CPU, docs/ring.md).
	b.fn = func(fd uintptr) bool {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[0])), uintptr(len(b.msgs)), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false // wait for readability in the netpoller
		}
		b.n, b.err = int(r), e
		return true
	}
	return b
}

// recv fills the batch, blocking until at least one frame arrives. It
// returns os.ErrDeadlineExceeded after a read deadline (how Run stops) and
// net.ErrClosed after Close.
func (l *link) recv(q int, b *rxBatch) (int, error) {
	b.n, b.err = 0, 0
	if err := l.rx[q].rc.Read(b.fn); err != nil {
		return 0, err
	}
	if b.err != 0 {
		return 0, fmt.Errorf("recvmmsg on %s: %w", l.info.name, b.err)
	}
	return b.n, nil
}

// frame returns slot i of the last recv: the virtio-net header and the frame.
func (b *rxBatch) frame(i int) (buf []byte, truncated bool) {
	m := &b.msgs[i]
	return b.bufs[i][:m.Len], m.Hdr.Flags&unix.MSG_TRUNC != 0
}

// txQueue batches frames for one output link from one goroutine; sendmmsg
// sends them at flush. Frames must stay unchanged until flush.
type txQueue struct {
	l    *link
	iovs []unix.Iovec
	msgs []unix.Mmsghdr
	n    int
	// counters of the flushing goroutine for this link
	c *linkCounters
}

func newTxQueue(l *link, n int, c *linkCounters) *txQueue {
	q := &txQueue{l: l, iovs: make([]unix.Iovec, n), msgs: make([]unix.Mmsghdr, n), c: c}
	for i := range q.msgs {
		q.msgs[i].Hdr.Iov = &q.iovs[i]
		q.msgs[i].Hdr.SetIovlen(1)
	}
	return q
}

// add queues the frame b (virtio-net header included), flushing first when
// the queue is full.
func (q *txQueue) add(b []byte) {
	if q.n == len(q.msgs) {
		q.flush()
	}
	q.iovs[q.n].Base = &b[0]
	q.iovs[q.n].SetLen(len(b))
	q.n++
}

// flush sends every queued frame with blocking sendmmsg on the link's
// transmit socket. A frame the kernel refuses is counted (DropTx) and skipped.
func (q *txQueue) flush() {
	off := 0
	for off < q.n {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(q.l.txfd), uintptr(unsafe.Pointer(&q.msgs[off])), uintptr(q.n-off), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			q.c.drops[DropTx].add(1)
			off++
			continue
		}
		for i := off; i < off+int(r); i++ {
			q.c.txFrames.add(1)
			q.c.txBytes.add(uint64(q.iovs[i].Len) - vnetHdrLen)
		}
		off += int(r)
	}
	q.n = 0
}

// writeOne sends a single frame (virtio-net header included) at once; for
// ARP and other rare frames off the batch path.
func (l *link) writeOne(b []byte) error {
	for {
		_, err := unix.Write(l.txfd, b)
		if err != unix.EINTR {
			return err
		}
	}
}

// isStop reports errors that mean "stop reading": a deadline set by Run's
// shutdown or a closed socket.
func isStop(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed)
}
