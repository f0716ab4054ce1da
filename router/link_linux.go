package router

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// slotSize is one receive buffer: the virtio-net header, then a frame of up
// to 64 KiB (a GSO super-frame handed over by veth/virtio offloads).
const slotSize = vnetHdrLen + ethHdrLen + 65535 + 1

// link is one capture NIC: AF_PACKET sockets bound to ETH_P_ALL. It is the
// LinkDevice the router uses when Config.Devices is nil.
type link struct {
	name string
	mac  net.HardwareAddr
	mtu  atomic.Int64  // Router.watchMTU stores the NIC's new MTU here
	rx   []*rxSock     // receive sockets, one per receive goroutine (PACKET_FANOUT_HASH when several)
	rd   []FrameReader // rx as FrameReaders
	// txfd is a second AF_PACKET socket, bound to the NIC with protocol 0
	// (it receives nothing), blocking and kept out of the netpoller. Sending
	// on an rx socket woke the netpoller for every transmitted frame: the skb
	// destructor calls sk_write_space, which wakes epoll waiters on the
	// socket (perf: sock_def_write_space, ~4 % of all CPU in a TCP run).
	txfd int
	// txRing, when Config.TxRing is set, is a third socket with a
	// TPACKET_V2 transmit ring (txring_linux.go) for the frames that fit
	// its slots; large ones still leave through txfd.
	txRing *txRing
	// txMu is read-held by every Write for its sendmmsg calls and taken by
	// Close, so txfd is never closed (and its number reused) under a
	// concurrent Write; Writes do not exclude each other.
	txMu      sync.RWMutex
	closed    atomic.Bool
	closeOnce sync.Once
	txPool    sync.Pool // *txMsgs: Write is called by several goroutines at once

	dropMu sync.Mutex
	drops  uint64 // PACKET_STATISTICS resets on read: accumulated here
}

var _ LinkDevice = (*link)(nil)

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

// openLink opens the capture sockets of one NIC in the calling thread's
// network namespace.
func openLink(name string, cfg *Config, primaries []netip.Addr) (*link, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w (is the interface up in this namespace?)", name, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("open %s: not an Ethernet interface (hardware address %v)", name, ifi.HardwareAddr)
	}
	filter, err := captureFilter(MAC(ifi.HardwareAddr), primaries)
	if err != nil {
		return nil, fmt.Errorf("open %s: assemble BPF: %w", name, err)
	}
	l := &link{name: name, mac: ifi.HardwareAddr, txfd: -1}
	l.mtu.Store(int64(ifi.MTU))
	if ifi.MTU <= 0 {
		l.mtu.Store(1500)
	}
	l.txPool.New = func() any { return newTxMsgs(cfg.Batch) }
	// One fanout group per link and process; ids are per network namespace.
	group := uint16(os.Getpid()*31+ifi.Index*7919) | 1
	for q := 0; q < cfg.RxQueues; q++ {
		rx, err := openRx(ifi, filter, cfg, group)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
		rx.l = l
		l.rx = append(l.rx, rx)
		l.rd = append(l.rd, rx)
	}
	txfd, err := openTxSocket(ifi.Index, cfg)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("open %s: transmit socket: %w", name, err)
	}
	l.txfd = txfd
	if cfg.TxRing > 0 {
		if l.txRing, err = newTxRing(ifi.Index, cfg, cfg.TxRing); err != nil {
			l.Close()
			return nil, fmt.Errorf("open %s: transmit ring (set TxRing to 0 to send with sendmmsg only): %w", name, err)
		}
	}
	return l, nil
}

// rxSock is one receive socket of a link, waiting in the Go netpoller; the
// FrameReader of one receive goroutine. It reads from its TPACKET_V2 ring
// (rxring_linux.go) when it has one, else with recvmmsg; the vectors and
// the read closures are reused for every Read.
type rxSock struct {
	l    *link
	conn *packet.Conn
	rc   syscall.RawConn
	iovs []unix.Iovec
	msgs []unix.Mmsghdr
	n    int
	err  syscall.Errno
	fn   func(fd uintptr) bool

	ring   *rxRing // nil: recvmmsg
	ringFn func(fd uintptr) bool
	bufs   [][]byte // the Read's arguments, for ringFn
	sizes  []int
	offset int
}

// openRx opens one receive socket: ETH_P_ALL (a socket bound to ETH_P_IP
// saw nothing once the nftables ingress drop was in place; ETH_P_ALL taps
// run before it, DESIGN.md), the BPF filter, virtio-net headers, no copies of
// our own transmissions, a large receive buffer, and with several receive
// goroutines a PACKET_FANOUT_HASH group so each flow stays on one goroutine
// (in order). A fanout group ignores outgoing frames only by its own flag:
// PACKET_IGNORE_OUTGOING on a member socket does not apply to the group.
func openRx(ifi *net.Interface, filter []bpf.RawInstruction, cfg *Config, group uint16) (*rxSock, error) {
	conn, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: filter})
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w (ringway needs root or CAP_NET_RAW)", err)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, err
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
			return nil, fmt.Errorf("set %s: %w", o.what, serr)
		}
	}
	s := newRxSock(conn, rc, cfg.Batch)
	if cfg.RxRing > 0 {
		var serr error
		if err := rc.Control(func(fd uintptr) { s.ring, serr = newRxRing(int(fd), cfg.RxRing) }); err != nil {
			serr = err
		}
		if serr != nil {
			conn.Close()
			return nil, fmt.Errorf("receive ring (set RxRing to 0 to use recvmmsg): %w", serr)
		}
	}
	return s, nil
}

func newRxSock(conn *packet.Conn, rc syscall.RawConn, batch int) *rxSock {
	s := &rxSock{conn: conn, rc: rc, iovs: make([]unix.Iovec, batch), msgs: make([]unix.Mmsghdr, batch)}
	for i := range s.msgs {
		s.msgs[i].Hdr.Iov = &s.iovs[i]
		s.msgs[i].Hdr.SetIovlen(1)
	}
	// Built once: a closure per call would allocate on the hot path.
	// RawSyscall: MSG_DONTWAIT never blocks, and a counted Syscall would
	// wake the runtime's sysmon thread from its idle sleep on every read
	// (a fifth of an idle node's CPU, docs/ring.md).
	s.fn = func(fd uintptr) bool {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.msgs[0])), uintptr(s.n), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false // wait for readability in the netpoller
		}
		s.n, s.err = int(r), e
		return true
	}
	s.ringFn = func(fd uintptr) bool {
		n, ok := s.ring.read(fd, s.bufs[:s.n], s.sizes, s.offset)
		if !ok {
			s.err = unix.EBADF // unmapped: the link is closed
			return true
		}
		if n == 0 {
			return false // empty: wait in the netpoller, then look again
		}
		s.n = n
		return true
	}
	return s
}

// Read is FrameReader.Read: one recvmmsg of up to len(bufs) frames (at most
// Config.Batch), waiting in the netpoller until one arrives.
func (s *rxSock) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n := min(len(bufs), len(s.msgs))
	fn := s.fn
	if s.ring != nil {
		fn = s.ringFn
		s.bufs, s.sizes, s.offset = bufs, sizes, offset
	} else {
		for i := range n {
			b := bufs[i][offset:]
			s.iovs[i].Base = &b[0]
			s.iovs[i].SetLen(len(b))
		}
	}
	s.n, s.err = n, 0
	err := s.rc.Read(fn)
	s.bufs, s.sizes = nil, nil
	if err != nil {
		if s.l.closed.Load() {
			return 0, net.ErrClosed
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Woken (Wake): clear the deadline before the caller
			// looks at why it was woken, so a Wake after this
			// point wakes the next Read.
			if err := s.conn.SetReadDeadline(time.Time{}); err != nil && s.l.closed.Load() {
				return 0, net.ErrClosed
			}
			return 0, nil
		}
		return 0, err
	}
	if s.err != 0 {
		if s.l.closed.Load() {
			return 0, net.ErrClosed
		}
		return 0, fmt.Errorf("recvmmsg on %s: %w", s.l.name, s.err)
	}
	if s.ring != nil {
		return s.n, nil
	}
	for i := range s.n {
		m := &s.msgs[i]
		sizes[i] = int(m.Len)
		if m.Hdr.Flags&unix.MSG_TRUNC != 0 {
			sizes[i] = len(bufs[i]) - offset + 1 // longer than the buffer
		}
	}
	return s.n, nil
}

// Wake is Waker.Wake: a read deadline in the past makes the netpoller
// return the blocked (or next) Read at once with os.ErrDeadlineExceeded,
// which Read turns into 0 frames.
func (s *rxSock) Wake() error { return s.conn.SetReadDeadline(time.Unix(1, 0)) }

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

// Readers is LinkDevice.Readers: one per receive socket.
func (l *link) Readers() []FrameReader { return l.rd }

// HardwareAddr is LinkDevice.HardwareAddr.
func (l *link) HardwareAddr() net.HardwareAddr { return l.mac }

// MTU is LinkDevice.MTU.
func (l *link) MTU() int { return int(l.mtu.Load()) }

// Dropped is LinkDevice.Dropped: the receive sockets' PACKET_STATISTICS
// drops, accumulated (the kernel resets them on every read).
func (l *link) Dropped() uint64 {
	l.dropMu.Lock()
	defer l.dropMu.Unlock()
	if !l.closed.Load() {
		for _, rx := range l.rx {
			if ps, err := rx.conn.Stats(); err == nil {
				l.drops += uint64(ps.Drops)
			}
		}
	}
	return l.drops
}

// Close closes the sockets; blocked Reads return net.ErrClosed.
func (l *link) Close() error {
	var err error
	l.closeOnce.Do(func() { err = l.close() })
	return err
}

func (l *link) close() error {
	l.Dropped() // keep the last counts
	l.closed.Store(true)
	var err error
	for _, rx := range l.rx {
		if e := rx.conn.Close(); err == nil {
			err = e
		}
		if rx.ring != nil {
			if e := rx.ring.unmap(); err == nil {
				err = e
			}
		}
	}
	l.txMu.Lock()
	defer l.txMu.Unlock()
	if l.txfd >= 0 {
		if e := unix.Close(l.txfd); err == nil {
			err = e
		}
		l.txfd = -1
	}
	if l.txRing != nil {
		if e := l.txRing.close(); err == nil {
			err = e
		}
	}
	return err
}

// txMsgs are the sendmmsg vectors of one Write call.
type txMsgs struct {
	iovs []unix.Iovec
	msgs []unix.Mmsghdr
}

func newTxMsgs(n int) *txMsgs {
	t := &txMsgs{iovs: make([]unix.Iovec, n), msgs: make([]unix.Mmsghdr, n)}
	for i := range t.msgs {
		t.msgs[i].Hdr.Iov = &t.iovs[i]
		t.msgs[i].Hdr.SetIovlen(1)
	}
	return t
}

// Write is LinkDevice.Write. With a transmit ring (Config.TxRing), the
// Write that gets it sends through it (writeRing); a Write that finds it in
// use, and every Write without one, sends with sendmmsg (writeMsgs).
func (l *link) Write(bufs [][]byte, offset int) (int, error) {
	l.txMu.RLock()
	defer l.txMu.RUnlock()
	if l.closed.Load() {
		return 0, net.ErrClosed
	}
	if r := l.txRing; r != nil && r.mu.TryLock() {
		defer r.mu.Unlock()
		return l.writeRing(r, bufs, offset)
	}
	return l.writeMsgs(bufs, offset)
}

// writeRing sends bufs in order: each run of frames that go through the
// ring with one kick, each run of the others (GSO super-frames, frames
// larger than a slot) with sendmmsg. When the ring's next slot is still in
// flight, the rest of bufs goes with sendmmsg.
func (l *link) writeRing(r *txRing, bufs [][]byte, offset int) (int, error) {
	sent := 0
	for sent < len(bufs) {
		first, n := r.next, 0
		for sent+n < len(bufs) && txRingFits(bufs[sent+n][offset:]) && r.put(bufs[sent+n][offset:]) {
			n++
		}
		if n > 0 {
			k, err := r.kick(first, n)
			sent += k
			if err != nil {
				if l.closed.Load() {
					return sent, net.ErrClosed
				}
				return sent, fmt.Errorf("send on %s (transmit ring): %w", l.name, err)
			}
			continue
		}
		m := len(bufs) - sent // the ring is full
		if !txRingFits(bufs[sent][offset:]) {
			m = 1
			for sent+m < len(bufs) && !txRingFits(bufs[sent+m][offset:]) {
				m++
			}
		}
		k, err := l.writeMsgs(bufs[sent:sent+m], offset)
		sent += k
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// writeMsgs sends bufs with blocking sendmmsg on the transmit socket, in
// chunks of Config.Batch frames. The vectors come from a pool, since every
// receive goroutine and the timer write concurrently.
func (l *link) writeMsgs(bufs [][]byte, offset int) (int, error) {
	t := l.txPool.Get().(*txMsgs)
	defer l.txPool.Put(t)
	sent := 0
	for sent < len(bufs) {
		n := min(len(bufs)-sent, len(t.msgs))
		for i := range n {
			b := bufs[sent+i][offset:]
			t.iovs[i].Base = &b[0]
			t.iovs[i].SetLen(len(b))
		}
		off := 0
		for off < n {
			r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(l.txfd), uintptr(unsafe.Pointer(&t.msgs[off])), uintptr(n-off), 0, 0, 0)
			if e == unix.EINTR {
				continue
			}
			if e != 0 {
				clear(t.iovs[:n]) // the pool must not keep frames alive
				if l.closed.Load() {
					return sent + off, net.ErrClosed
				}
				return sent + off, fmt.Errorf("sendmmsg on %s: %w", l.name, e)
			}
			off += int(r)
		}
		sent += n
	}
	clear(t.iovs[:min(len(bufs), len(t.iovs))])
	return sent, nil
}

// isStop reports the error of a closed device: Run has stopped.
func isStop(err error) bool { return errors.Is(err, net.ErrClosed) }
