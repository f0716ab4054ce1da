// Package tunnelnet is the driver of the inter-node tunnel (docs/forward.md
// "The tunnel datagram"): UDP sockets on this node's primary addresses at
// forward.port, a Sealer and an Opener keyed from the cluster key and the
// node's boot, and the hand-over of packets to the router
// (router.TunnelDevice) and of registers, hints and acks to and from the filter
// (forward.Filter's Step and TunnelMessages).
//
// Datagrams go to a peer's address on the first subnet (path 0), and on
// the next one when sending there fails. A tunnelled packet of a full MTU
// makes a datagram larger than the link MTU (48 + 28 bytes more): the
// sockets never set DF (IP_PMTUDISC_DONT), so the kernel fragments the
// datagram and the peer's kernel reassembles it.
package tunnelnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ringway/ringway/forward"
	"github.com/ringway/ringway/router"
)

// Core is what the driver needs of the filter: forward.Filter.
type Core interface {
	Step(h forward.TunnelHeader, now int64)
	TunnelMessages(dst []forward.TunnelHeader) []forward.TunnelHeader
	TunnelReady() <-chan struct{}
	// Epoch is the membership epoch sent in every datagram
	// (forward.MembershipEpoch); 0 before the first membership.
	Epoch() uint64
}

// Config configures a Driver.
type Config struct {
	Self  uint16           // this node's id (node-map position)
	Key   []byte           // the cluster key, 32 bytes
	Boot  uint64           // this node's boot id; must grow from one boot to the next (peers refuse an older one)
	Local []netip.AddrPort // this node's primary addresses at forward.port, one per subnet
	// Peers are every node's addresses at forward.port, by node id (this
	// node's are ignored), in subnet order.
	Peers map[uint16][]netip.AddrPort
	Core  Core
	Now   func() int64 // the filter's clock (ns)
	// Queue bounds the received packets waiting for the router. Default
	// 4096; at the bound a packet is dropped and counted.
	Queue int
	// ReadsSocket says the router reads the tunnel (Read) all the time:
	// with one local address, Read then reads the socket itself, which
	// saves a goroutine hand-over per packet, and Run does not read it
	// (registers, hints and acks are then taken in Read). Leave it off
	// when nothing calls Read.
	ReadsSocket bool
	Logger      *slog.Logger
}

// Stats are the driver's counters. All are monotonic.
type Stats struct {
	Sent, SentBytes     uint64              // data datagrams sent, and their packets' bytes
	Received, RcvdBytes uint64              // data datagrams opened and handed over, and their packets' bytes
	Registers, Hints    [2]uint64           // [0] sent, [1] received
	Acks                [2]uint64           // register acknowledgements: [0] sent, [1] received
	SendErrors          uint64              // datagrams the sockets refused
	QueueFull           uint64              // received packets dropped because the router fell behind
	Whole               [2]uint64           // TCP super-packets carried whole (data_gso): [0] sent, [1] received
	BadGSO              uint64              // authentic data_gso datagrams with a malformed GSO prefix, dropped
	EpochStale          uint64              // datagrams opened whose sender was on an older membership than this node
	EpochFuture         uint64              // datagrams opened whose sender was on a newer membership than this node
	Tunnel              forward.TunnelStats // the opener's: opened and refused by reason
	PerPeer             map[uint16]PeerStats
}

// PeerStats are the data packets exchanged with one peer.
type PeerStats struct {
	Sent, SentBytes, Received, RcvdBytes uint64
}

type peerCounters struct {
	sent, sentBytes, rcvd, rcvdBytes atomic.Uint64
}

// packet is one received data payload waiting for the router.
type packet struct {
	buf    *[]byte
	off, n int
	from   uint16
	hops   uint8
	seg    router.Segments
}

// Driver is the tunnel. New binds the sockets; Run runs the receivers and
// the sender of registers and hints; Close closes everything.
type Driver struct {
	cfg    Config
	log    *slog.Logger
	sealer *forward.Sealer
	opener *forward.Opener
	conns  []*net.UDPConn
	rcs    []syscall.RawConn // conns', for batched I/O (sendmmsg, recvmmsg)
	// pt is the peers: replaced whole by AddPeers (a reload appends
	// nodes), read lock-free on the packet path.
	pt       atomic.Pointer[peerTable]
	addMu    sync.Mutex   // serialises AddPeers
	sends    sync.Pool    // *sendBatch
	rbatches []*recvBatch // Read's, one per socket, with Config.ReadsSocket
	// segMax is the largest datagram the first path sends in a UDP GSO
	// run (UDP_SEGMENT): its interface's MTU less the outer headers; 0
	// when unknown or refused by the kernel (then one datagram per
	// message).
	segMax atomic.Int64
	pool   sync.Pool // *[]byte of forward.MaxDatagram bytes
	small  sync.Pool // *[]byte of smallBuf bytes: queued packets of one MTU
	in     chan packet
	done   chan struct{}
	// direct: Read reads socket i itself (Config.ReadsSocket), with
	// rbatches[i].
	direct bool

	closeOnce sync.Once
	wg        sync.WaitGroup
	flushMu   sync.Mutex // guards flushBuf
	flushBuf  []forward.TunnelHeader

	sent, sentBytes, rcvd, rcvdBytes atomic.Uint64
	regs, hints, acks                [2]atomic.Uint64
	sendErrs, queueFull              atomic.Uint64
	whole                            [2]atomic.Uint64
	badGSO                           atomic.Uint64
	epochStale, epochFuture          atomic.Uint64
	sync                             syncCounters // sync.go
}

// peerTable is what the driver knows of its peers, by node id.
type peerTable struct {
	addrs map[uint16][]netip.AddrPort // every path's address at forward.port
	// sas are addrs as the kernel takes them, for batched sends: a
	// message's header points at its entry (a table is replaced whole,
	// never changed, so the entries stay put).
	sas   map[uint16][]unix.RawSockaddrInet4
	ctrs  map[uint16]*peerCounters
	boots map[uint16]*atomic.Uint64 // sync.go noteBoot: the boot last told of each peer
}

// with returns a copy of t with the peers of add that t lacks (not self).
func (t *peerTable) with(add map[uint16][]netip.AddrPort, self uint16) *peerTable {
	n := &peerTable{addrs: maps.Clone(t.addrs), sas: maps.Clone(t.sas), ctrs: maps.Clone(t.ctrs), boots: maps.Clone(t.boots)}
	for id, as := range add {
		if id == self || id == 0 || n.addrs[id] != nil || slices.ContainsFunc(as, notIPv4) {
			continue // not IPv4: New refuses it, and the config has only IPv4
		}
		n.addrs[id] = slices.Clone(as)
		n.ctrs[id] = &peerCounters{}
		n.boots[id] = new(atomic.Uint64)
		for _, a := range as {
			n.sas[id] = append(n.sas[id], sockaddr4(a))
		}
	}
	return n
}

// notIPv4 reports whether a is not an IPv4 address (nor IPv4 mapped into
// IPv6): the tunnel's sockets are udp4.
func notIPv4(a netip.AddrPort) bool { return !a.Addr().Unmap().Is4() }

// sockaddr4 returns a (an IPv4 address, or IPv4 mapped into IPv6) as a
// sockaddr_in; any other address gives one of family AF_UNSPEC (peerTable
// holds none).
func sockaddr4(a netip.AddrPort) unix.RawSockaddrInet4 {
	ip := a.Addr().Unmap()
	if !ip.Is4() {
		return unix.RawSockaddrInet4{}
	}
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip.As4()}
	pb := (*[2]byte)(unsafe.Pointer(&sa.Port)) // network byte order
	pb[0], pb[1] = byte(a.Port()>>8), byte(a.Port())
	return sa
}

// AddPeers adds the nodes of peers the driver does not know yet (a reload
// appended them to the node map): from now on it sends to them and
// accepts their datagrams. Known peers keep their addresses, counters and
// replay windows.
func (d *Driver) AddPeers(peers map[uint16][]netip.AddrPort) {
	d.addMu.Lock()
	defer d.addMu.Unlock()
	pt := d.pt.Load().with(peers, d.cfg.Self)
	ids := slices.Sorted(maps.Keys(pt.addrs))
	d.opener.SetPeers(ids)
	d.pt.Store(pt)
}

// New checks cfg and binds one UDP socket per local address.
func New(cfg Config) (*Driver, error) {
	if cfg.Core == nil || cfg.Now == nil {
		return nil, errors.New("tunnel: no core or clock")
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s, err := forward.NewSealer(cfg.Key, cfg.Self, cfg.Boot)
	if err != nil {
		return nil, err
	}
	var ids []uint16
	for id, as := range cfg.Peers {
		if i := slices.IndexFunc(as, notIPv4); i >= 0 {
			return nil, fmt.Errorf("tunnel: peer %d: address %v is not IPv4", id, as[i])
		}
		ids = append(ids, id)
	}
	o, err := forward.NewOpener(cfg.Key, cfg.Self, ids)
	if err != nil {
		return nil, err
	}
	d := &Driver{cfg: cfg, log: cfg.Logger, sealer: s, opener: o, in: make(chan packet, cfg.Queue), done: make(chan struct{})}
	d.pool.New = func() any { b := make([]byte, forward.MaxDatagram); return &b }
	d.small.New = func() any { b := make([]byte, smallBuf); return &b }
	empty := &peerTable{addrs: map[uint16][]netip.AddrPort{}, sas: map[uint16][]unix.RawSockaddrInet4{},
		ctrs: map[uint16]*peerCounters{}, boots: map[uint16]*atomic.Uint64{}}
	d.pt.Store(empty.with(cfg.Peers, cfg.Self))
	d.sends.New = func() any {
		b := &sendBatch{}
		b.write = b.sendmmsg // bound once: a method value per call would allocate
		return b
	}
	for _, a := range cfg.Local {
		c, err := listen(a)
		if err != nil {
			d.closeConns()
			return nil, err
		}
		d.conns = append(d.conns, c)
		rc, err := c.SyscallConn()
		if err != nil {
			d.closeConns()
			return nil, fmt.Errorf("tunnel: %w", err)
		}
		d.rcs = append(d.rcs, rc)
	}
	if len(cfg.Local) > 0 {
		if mtu := ifaceMTU(cfg.Local[0].Addr()); mtu > 28 {
			d.segMax.Store(int64(mtu - 28))
		}
	}
	if len(d.conns) == 0 {
		return nil, errors.New("tunnel: no local address")
	}
	d.direct = cfg.ReadsSocket
	if d.direct {
		for _, c := range d.conns {
			d.rbatches = append(d.rbatches, newRecvBatch())
			// Runs of datagrams from one sender arrive as one message
			// (Read splits them): one pass through the kernel's UDP
			// receive path per run. Best effort: without it each
			// arrives alone.
			if rc, err := c.SyscallConn(); err == nil {
				_ = rc.Control(func(fd uintptr) {
					_ = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1)
				})
			}
		}
	}
	return d, nil
}

// ifaceMTU returns the MTU of the interface that has address a, 0 when
// none has.
func ifaceMTU(a netip.Addr) int {
	ifs, err := net.Interfaces()
	if err != nil {
		return 0
	}
	for _, ifc := range ifs {
		as, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, x := range as {
			if n, ok := x.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a {
					return ifc.MTU
				}
			}
		}
	}
	return 0
}

// listen binds a to a UDP socket that never sets DF: the kernel fragments
// datagrams larger than the path MTU (a TCP super-packet carried whole is
// one datagram of up to 64 KiB). Its buffers are 4 MiB, beyond the
// sysctl caps when the process may (CAP_NET_ADMIN): a reassembled 64 KiB
// datagram takes about 100 KiB of receive buffer, so the default 208 KiB
// would hold two.
func listen(a netip.AddrPort) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", a.String())
	if err != nil {
		return nil, fmt.Errorf("tunnel: bind %v: %w (forward.port must be free on every primary address)", a, err)
	}
	c := pc.(*net.UDPConn)
	if rc, err := c.SyscallConn(); err == nil {
		var ferr error
		_ = rc.Control(func(fd uintptr) {
			ferr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
			if ferr == nil {
				ferr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
			}
		})
		if ferr == nil {
			return c, nil
		}
	}
	_ = c.SetReadBuffer(4 << 20) // best effort: the kernel caps it at rmem_max
	_ = c.SetWriteBuffer(4 << 20)
	return c, nil
}

// Run receives datagrams and sends the filter's registers and hints until
// ctx is done or Close; it returns nil then.
func (d *Driver) Run(ctx context.Context) error {
	if !d.direct {
		for _, c := range d.conns {
			d.wg.Go(func() { d.receive(c) })
		}
	}
	d.wg.Go(func() { d.runSync(ctx) }) // sync.go
	defer d.wg.Wait()
	defer d.Close()
	var msgs []forward.TunnelHeader
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.done:
			return nil
		case <-d.cfg.Core.TunnelReady():
		}
		msgs = d.sendMessages(msgs)
	}
}

// Flush sends what the filter has queued now (router.TunnelDevice).
func (d *Driver) Flush() {
	ready := d.cfg.Core.TunnelReady()
	if len(ready) == 0 {
		return
	}
	select {
	case <-ready:
		d.flushMu.Lock()
		d.flushBuf = d.sendMessages(d.flushBuf)
		d.flushMu.Unlock()
	default:
	}
}

// sendMessages sends the filter's registers and hints, using msgs as
// scratch, and returns it.
func (d *Driver) sendMessages(msgs []forward.TunnelHeader) []forward.TunnelHeader {
	msgs = d.cfg.Core.TunnelMessages(msgs[:0])
	for _, h := range msgs {
		if d.send(h, nil) {
			switch h.Type {
			case forward.TypeHint:
				d.hints[0].Add(1)
			case forward.TypeAck:
				d.acks[0].Add(1)
			default:
				d.regs[0].Add(1)
			}
		}
	}
	return msgs
}

// Send seals ip for node to (router.TunnelDevice): one datagram, also for
// a TCP super-packet (seg.Size != 0) of up to forward.MaxGSOPacket bytes.
func (d *Driver) Send(to uint16, hops uint8, seg router.Segments, ip []byte) error {
	if seg.Size != 0 {
		if len(ip) > forward.MaxGSOPacket {
			return router.ErrSegmentsTooBig
		}
		if !d.sendWhole(forward.TunnelHeader{Type: forward.TypeDataGSO, Hops: hops, Receiver: to}, seg, ip) {
			return errSend
		}
		d.whole[0].Add(1)
	} else if !d.send(forward.TunnelHeader{Type: forward.TypeData, Hops: hops, Receiver: to}, ip) {
		return errSend
	}
	d.sent.Add(1)
	d.sentBytes.Add(uint64(len(ip)))
	if c := d.pt.Load().ctrs[to]; c != nil {
		c.sent.Add(1)
		c.sentBytes.Add(uint64(len(ip)))
	}
	return nil
}

var errSend = errors.New("tunnel: not sent")

// sendBatchMax is the most datagrams one sendmmsg carries.
const sendBatchMax = 64

// message is one sendmmsg message: x/net's ipv4.Message with the
// destination as the kernel takes it, pointing into the peer table.
type message struct {
	Buffers [][]byte
	OOB     []byte
	Addr    *unix.RawSockaddrInet4
}

// sendBatch is one SendBatch call's scratch: the sealed datagrams in one
// arena (dgs, each with its peer's address, node and plain size), and the
// messages sent: a run of datagrams of one size to one peer goes as one
// UDP GSO message, its buffers a slice of dgs.
type sendBatch struct {
	arena []byte
	dgs   [][]byte
	addrs []*unix.RawSockaddrInet4
	to    []uint16
	size  []int
	out   []message
	first []int // out[k] is dgs[first[k]:first[k+1]]
	oob   [][]byte

	// writeBatch's: the system call's vectors, and its result.
	mm    []unix.Mmsghdr
	iovs  []unix.Iovec
	sent  int
	err   error
	small bool                  // one datagram: a raw system call
	write func(fd uintptr) bool // b.sendmmsg
}

// writeBatch sends msgs (IPv4 addresses) on socket path with one
// sendmmsg and returns how many it sent, waiting in the netpoller while
// the socket's buffer is full. The system call of one datagram is raw, as
// Read's recvmmsg (recvBatch): MSG_DONTWAIT never blocks, and a counted
// call would wake sysmon for every packet at low rates.
func (d *Driver) writeBatch(b *sendBatch, path int, msgs []message) (int, error) {
	niov := 0
	for _, m := range msgs {
		niov += len(m.Buffers)
	}
	// Sized up front: the headers point into these slices.
	if cap(b.iovs) < niov {
		b.iovs = make([]unix.Iovec, 0, niov)
	}
	if cap(b.mm) < len(msgs) {
		b.mm = make([]unix.Mmsghdr, 0, len(msgs))
	}
	b.mm, b.iovs = b.mm[:0], b.iovs[:0]
	for _, m := range msgs {
		first := len(b.iovs)
		for _, buf := range m.Buffers {
			var v unix.Iovec
			v.Base = unsafe.SliceData(buf)
			v.SetLen(len(buf))
			b.iovs = append(b.iovs, v)
		}
		var h unix.Mmsghdr
		h.Hdr.Iov = &b.iovs[first]
		h.Hdr.SetIovlen(len(m.Buffers))
		h.Hdr.Name = (*byte)(unsafe.Pointer(m.Addr))
		h.Hdr.Namelen = unix.SizeofSockaddrInet4
		if len(m.OOB) > 0 {
			h.Hdr.Control = &m.OOB[0]
			h.Hdr.SetControllen(len(m.OOB))
		}
		b.mm = append(b.mm, h)
	}
	// A large batch keeps the kernel busy for long (it delivers to the
	// peer's socket as it sends): a counted call then lets the runtime
	// hand this P to other goroutines meanwhile, as x/net's WriteBatch did.
	b.small = len(msgs) == 1 && niov == 1
	b.sent, b.err = 0, nil
	err := d.rcs[path].Write(b.write)
	if err == nil {
		err = b.err
	}
	return b.sent, err
}

// sendmmsg is sendBatch.write's system call on the headers writeBatch
// built (b.mm): a counted call, or a raw one for a single datagram.
func (b *sendBatch) sendmmsg(fd uintptr) bool {
	call := unix.Syscall6
	if b.small {
		call = unix.RawSyscall6
	}
	r, _, e := call(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.mm[0])), uintptr(len(b.mm)), unix.MSG_DONTWAIT, 0, 0)
	switch {
	case e == unix.EAGAIN:
		return false // wait for room in the netpoller
	case e != 0:
		b.err = e
	default:
		b.sent = int(r)
	}
	return true
}

// maxSegments is the most datagrams of one UDP GSO message
// (UDP_MAX_SEGMENTS of older kernels).
const maxSegments = 64

// sendMsgs sends b's datagrams: runs of equal size (the last of a run may
// be shorter) to one peer as UDP GSO messages, all with sendmmsg on the
// first path; what it refuses goes alone, on the next paths.
func (d *Driver) sendMsgs(b *sendBatch, failed *int) {
	segMax := int(d.segMax.Load())
	b.out, b.first = b.out[:0], b.first[:0]
	for i := 0; i < len(b.dgs); {
		dg := b.dgs[i]
		j := i + 1
		if len(dg) <= segMax {
			total := len(dg)
			for j < len(b.dgs) && j-i < maxSegments && b.to[j] == b.to[i] {
				l := len(b.dgs[j])
				if l > len(dg) || total+l > 65507 {
					break
				}
				total += l
				j++
				if l < len(dg) {
					break // a shorter one ends the run
				}
			}
		}
		k := len(b.out)
		if k == len(b.oob) {
			b.oob = append(b.oob, make([]byte, unix.CmsgSpace(2)))
		}
		m := message{Addr: b.addrs[i], Buffers: b.dgs[i:j:j]}
		if j-i > 1 {
			oob := b.oob[k]
			h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
			h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
			h.SetLen(unix.CmsgLen(2))
			*(*uint16)(unsafe.Pointer(&oob[unix.SizeofCmsghdr])) = uint16(len(dg))
			m.OOB = oob
		}
		b.out = append(b.out, m)
		b.first = append(b.first, i)
		i = j
	}
	b.first = append(b.first, len(b.dgs))
	for k := 0; k < len(b.out); {
		n, err := d.writeBatch(b, 0, b.out[k:])
		if err == nil && n > 0 {
			for x := b.first[k]; x < b.first[k+n]; x++ {
				d.countSent(b.to[x], b.size[x])
			}
			k += n
			continue
		}
		if b.out[k].OOB != nil && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EIO)) {
			d.segMax.Store(0) // the kernel or the device cannot: no more runs
		}
		// Message k's datagrams alone; the first path again for a run
		// (its GSO may be what failed), else the next paths.
		from := 1
		if b.out[k].OOB != nil {
			from = 0
		}
		for x := b.first[k]; x < b.first[k+1]; x++ {
			if d.writeFrom(from, b.to[x], b.dgs[x]) {
				d.countSent(b.to[x], b.size[x])
			} else {
				*failed++
			}
		}
		k++
	}
}

// SendBatch seals plain packets and sends them with as few sendmmsg calls
// as it can on the first path; a datagram that path refuses is sent alone
// on the next (router.TunnelDevice).
func (d *Driver) SendBatch(pkts []router.TunnelPacket) (failed int) {
	b := d.sends.Get().(*sendBatch)
	defer d.sends.Put(b)
	epoch := d.cfg.Core.Epoch()
	for len(pkts) > 0 {
		chunk := pkts[:min(len(pkts), sendBatchMax)]
		pkts = pkts[len(chunk):]
		need := 0
		for _, p := range chunk {
			need += len(p.IP) + forward.DataOverhead
		}
		if cap(b.arena) < need {
			b.arena = make([]byte, 0, need)
		}
		b.arena, b.dgs, b.addrs, b.to, b.size = b.arena[:0], b.dgs[:0], b.addrs[:0], b.to[:0], b.size[:0]
		pt := d.pt.Load()
		for _, p := range chunk {
			as := pt.sas[p.To]
			n := len(b.arena)
			sealed, err := d.sealer.Seal(b.arena, forward.TunnelHeader{Type: forward.TypeData, Hops: p.Hops, Receiver: p.To, Epoch: epoch}, p.IP)
			if err != nil || len(as) == 0 {
				d.sendErrs.Add(1)
				failed++
				continue
			}
			b.arena = sealed
			dg := b.arena[n:len(b.arena):len(b.arena)]
			b.dgs, b.addrs = append(b.dgs, dg), append(b.addrs, &as[0])
			b.to, b.size = append(b.to, p.To), append(b.size, len(p.IP))
		}
		d.sendMsgs(b, &failed)
	}
	return failed
}

func (d *Driver) countSent(to uint16, n int) {
	d.sent.Add(1)
	d.sentBytes.Add(uint64(n))
	if c := d.pt.Load().ctrs[to]; c != nil {
		c.sent.Add(1)
		c.sentBytes.Add(uint64(n))
	}
}

// send seals and sends one datagram, on the first path that takes it.
func (d *Driver) send(h forward.TunnelHeader, payload []byte) bool {
	bp := d.pool.Get().(*[]byte)
	defer d.pool.Put(bp)
	h.Epoch = d.cfg.Core.Epoch()
	b, err := d.sealer.Seal((*bp)[:0], h, payload)
	if err != nil {
		d.sendErrs.Add(1)
		return false
	}
	return d.write(h.Receiver, b)
}

// sendWhole seals the super-packet ip behind its GSO prefix, in place in
// a pooled buffer (one copy of the packet), and sends it.
func (d *Driver) sendWhole(h forward.TunnelHeader, seg router.Segments, ip []byte) bool {
	bp := d.pool.Get().(*[]byte)
	defer d.pool.Put(bp)
	h.Epoch = d.cfg.Core.Epoch()
	buf := *bp
	p := buf[forward.HeaderLen : forward.HeaderLen+forward.GSOPrefixLen+len(ip)]
	forward.PutGSO(p, seg.GSOType, seg.Size)
	copy(p[forward.GSOPrefixLen:], ip)
	b, err := d.sealer.Seal(buf[:0], h, p)
	if err != nil {
		d.sendErrs.Add(1)
		return false
	}
	return d.write(h.Receiver, b)
}

// write sends the sealed datagram b to node to on the first path that
// takes it.
func (d *Driver) write(to uint16, b []byte) bool { return d.writeFrom(0, to, b) }

// writeFrom sends the sealed datagram b to node to on the first path from
// path first on that takes it.
func (d *Driver) writeFrom(first int, to uint16, b []byte) bool {
	as := d.pt.Load().addrs[to]
	if len(as) == 0 {
		d.sendErrs.Add(1)
		return false
	}
	for i, a := range as {
		if i < first {
			continue
		}
		if i >= len(d.conns) {
			break
		}
		if _, err := d.conns[i].WriteToUDPAddrPort(b, a); err == nil {
			return true
		}
	}
	d.sendErrs.Add(1)
	return false
}

// receive reads one socket until it is closed, queueing data packets for
// Read (sockets other than the one Read reads itself).
func (d *Driver) receive(c *net.UDPConn) {
	for {
		bp := d.pool.Get().(*[]byte)
		n, _, err := c.ReadFromUDPAddrPort(*bp)
		if err != nil {
			d.pool.Put(bp)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		b := (*bp)[:n]
		payload, p, ok := d.handle(b)
		if !ok {
			d.pool.Put(bp)
			continue
		}
		p.buf, p.off = bp, len(b)-len(payload)-forward.TagLen
		if p.n <= smallBuf {
			// Queue packets of an MTU in small buffers: the queue
			// then holds thousands at little cost.
			sp := d.small.Get().(*[]byte)
			copy(*sp, payload)
			d.pool.Put(bp)
			p.buf, p.off = sp, 0
		}
		select {
		case d.in <- p:
		default:
			d.queueFull.Add(1)
			d.put(p.buf)
		}
	}
}

// handle opens the datagram b and acts on it: registers, hints, acks and
// sync go to the filter now; a data packet is returned (its payload, in b,
// and a packet without buf) with ok, for the router.
func (d *Driver) handle(b []byte) (payload []byte, p packet, ok bool) {
	h, payload, r := d.opener.Open(b)
	if r != forward.TunnelOK {
		return nil, p, false
	}
	d.noteBoot(h) // sync.go
	// Counted only: the filter judges the epoch of what it steps
	// (hints), and a data packet is never dropped for it
	// (docs/forward.md "Membership epochs").
	switch forward.CompareEpoch(d.cfg.Core.Epoch(), h.Epoch) {
	case forward.EpochStale:
		d.epochStale.Add(1)
	case forward.EpochFuture:
		d.epochFuture.Add(1)
	}
	switch h.Type {
	case forward.TypeData, forward.TypeDataGSO:
		var seg router.Segments
		if h.Type == forward.TypeDataGSO {
			typ, size, ip, ok := forward.ParseGSO(payload)
			if !ok {
				d.badGSO.Add(1)
				return nil, p, false
			}
			seg, payload = router.Segments{GSOType: typ, Size: size}, ip
			d.whole[1].Add(1)
		}
		return payload, packet{n: len(payload), from: h.Sender, hops: h.Hops, seg: seg}, true
	case forward.TypeSync, forward.TypeSyncAck:
		d.stepSync(h, payload) // sync.go
		return nil, p, false
	case forward.TypeRegister:
		d.regs[1].Add(1)
	case forward.TypeHint:
		d.hints[1].Add(1)
	case forward.TypeAck:
		d.acks[1].Add(1)
	}
	d.cfg.Core.Step(h, d.cfg.Now())
	return nil, p, false
}

// Paths is how many receive paths the router reads
// (router.TunnelDevice): with Config.ReadsSocket, one per socket
// (subnet); otherwise one, which reads what the sockets' receivers queue.
func (d *Driver) Paths() int {
	if d.direct {
		return len(d.conns)
	}
	return 1
}

// Read hands received packets to the router (router.TunnelDevice). With
// Config.ReadsSocket the router's tunnel worker of path reads that socket
// here itself: a packet then reaches the router with one wake-up, not two
// (socket reader, queue, worker). Otherwise a receiver per socket queues
// the packets for path 0.
func (d *Driver) Read(path int, bufs [][]byte, sizes []int, froms []uint16, hops []uint8, segs []router.Segments, offset int) (int, error) {
	if path < 0 || path >= d.Paths() {
		return 0, fmt.Errorf("tunnel: no reader %d (%d)", path, d.Paths())
	}
	if d.direct {
		return d.readDirect(path, bufs, sizes, froms, hops, segs, offset)
	}
	return d.readQueued(bufs, sizes, froms, hops, segs, offset)
}

// recvBatchMax is the most messages one recvmmsg takes; with UDP_GRO a
// message may hold many datagrams of one sender.
const recvBatchMax = 16

// recvBatch is Read's scratch for recvmmsg on one socket: a buffer of a
// whole datagram (or of a coalesced run of them, UDP_GRO) per message,
// and where the last Read stopped when the router's buffers were full.
//
// recvmmsg is a raw system call (MSG_DONTWAIT never blocks), waiting in
// the netpoller when the socket is empty: a counted one (syscall.Syscall,
// as x/net's ReadBatch makes) wakes the runtime's sysmon thread from its
// idle sleep whenever the node was idle, i.e. for every packet at low
// rates, and that thread then takes the other CPU for a while
// (docs/forward.md "Where the tunnel hop's time goes").
type recvBatch struct {
	mm   []unix.Mmsghdr
	iovs []unix.Iovec
	bufs [][]byte
	oobs [][]byte
	m    int // messages read by the last recvmmsg
	i    int // next message to take datagrams from
	off  int // next datagram's offset in message i
	err  error
	fn   func(fd uintptr) bool // built once: a closure per call would allocate
}

func newRecvBatch() *recvBatch {
	b := &recvBatch{mm: make([]unix.Mmsghdr, recvBatchMax), iovs: make([]unix.Iovec, recvBatchMax),
		bufs: make([][]byte, recvBatchMax), oobs: make([][]byte, recvBatchMax)}
	for i := range b.mm {
		b.bufs[i] = make([]byte, forward.MaxDatagram)
		b.oobs[i] = make([]byte, 64)
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(len(b.bufs[i]))
		b.mm[i].Hdr.Iov = &b.iovs[i]
		b.mm[i].Hdr.SetIovlen(1)
		b.mm[i].Hdr.Control = &b.oobs[i][0]
	}
	b.fn = func(fd uintptr) bool {
		for i := range b.mm {
			b.mm[i].Hdr.SetControllen(len(b.oobs[i]))
		}
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.mm[0])), uintptr(len(b.mm)), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case e == 0:
			b.m, b.i, b.off = int(r), 0, 0
		case e == unix.EAGAIN || e == unix.EINTR:
			return false // wait for readability in the netpoller
		default:
			b.err = e
		}
		return true
	}
	return b
}

// groSize returns the datagram size of a message the kernel coalesced
// (UDP_GRO), from its control messages; 0 when it holds one datagram.
func groSize(oob []byte) int {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && l >= unix.SizeofCmsghdr+4 {
			return int(*(*int32)(unsafe.Pointer(&oob[unix.SizeofCmsghdr])))
		}
		oob = oob[min(unix.CmsgSpace(l-unix.SizeofCmsghdr), len(oob)):]
	}
	return 0
}

// readDirect reads datagrams from socket path with recvmmsg: it waits
// for the first, takes what else is there, and returns up to len(bufs)
// data packets (again if there were none); what does not fit waits for
// the next Read.
func (d *Driver) readDirect(path int, bufs [][]byte, sizes []int, froms []uint16, hops []uint8, segs []router.Segments, offset int) (int, error) {
	rb := d.rbatches[path]
	n := 0
	for {
		for ; rb.i < rb.m && n < len(bufs); rb.i, rb.off = rb.i+1, 0 {
			mh := &rb.mm[rb.i]
			all := rb.bufs[rb.i][:mh.Len]
			size := len(all)
			if g := groSize(rb.oobs[rb.i][:min(int(mh.Hdr.Controllen), len(rb.oobs[rb.i]))]); g > 0 {
				size = g
			}
			for rb.off < len(all) && n < len(bufs) {
				dg := all[rb.off:min(rb.off+size, len(all))]
				rb.off += len(dg)
				payload, p, ok := d.handle(dg)
				if !ok || offset+p.n > len(bufs[n]) {
					continue
				}
				copy(bufs[n][offset:], payload)
				d.deliver(p, n, sizes, froms, hops, segs)
				n++
			}
			if rb.off < len(all) {
				return n, nil // bufs full; the rest of this message next time
			}
		}
		if n > 0 {
			return n, nil
		}
		rb.m, rb.err = 0, nil
		err := d.rcs[path].Read(rb.fn)
		if err == nil && rb.err == nil {
			continue
		}
		select {
		case <-d.done:
			return 0, net.ErrClosed
		default:
		}
		if errors.Is(err, net.ErrClosed) {
			return 0, net.ErrClosed
		}
		// Other errors (an ICMP error queued on the socket, say)
		// concern one datagram: read on.
	}
}

// deliver fills in slot i for the packet p and counts it.
func (d *Driver) deliver(p packet, i int, sizes []int, froms []uint16, hops []uint8, segs []router.Segments) {
	sizes[i], froms[i], hops[i], segs[i] = p.n, p.from, p.hops, p.seg
	d.rcvd.Add(1)
	d.rcvdBytes.Add(uint64(p.n))
	if c := d.pt.Load().ctrs[p.from]; c != nil {
		c.rcvd.Add(1)
		c.rcvdBytes.Add(uint64(p.n))
	}
}

// readQueued waits for a packet the sockets' receivers queued and reads
// it and what else is queued, up to len(bufs).
func (d *Driver) readQueued(bufs [][]byte, sizes []int, froms []uint16, hops []uint8, segs []router.Segments, offset int) (int, error) {
	var p packet
	select {
	case p = <-d.in:
	case <-d.done:
		return 0, net.ErrClosed
	}
	n := 0
	for {
		if offset+p.n <= len(bufs[n]) {
			copy(bufs[n][offset:], (*p.buf)[p.off:p.off+p.n])
			d.deliver(p, n, sizes, froms, hops, segs)
			n++
		}
		d.put(p.buf)
		if n == len(bufs) {
			return n, nil
		}
		select {
		case p = <-d.in:
		default:
			return n, nil
		}
	}
}

// smallBuf is the size of the buffers packets of up to one 9000-byte MTU
// wait in for the router.
const smallBuf = 9216

func (d *Driver) put(b *[]byte) {
	if len(*b) == smallBuf {
		d.small.Put(b)
	} else {
		d.pool.Put(b)
	}
}

// Close closes the sockets: Run and Read return. Safe to call more than
// once.
func (d *Driver) Close() error {
	d.closeOnce.Do(func() {
		close(d.done)
		d.closeConns()
	})
	return nil
}

func (d *Driver) closeConns() {
	for _, c := range d.conns {
		c.Close()
	}
}

// Stats returns the counters.
func (d *Driver) Stats() Stats {
	s := Stats{Sent: d.sent.Load(), SentBytes: d.sentBytes.Load(), Received: d.rcvd.Load(), RcvdBytes: d.rcvdBytes.Load(),
		SendErrors: d.sendErrs.Load(), QueueFull: d.queueFull.Load(), BadGSO: d.badGSO.Load(), EpochStale: d.epochStale.Load(), EpochFuture: d.epochFuture.Load(), Tunnel: d.opener.Stats(), PerPeer: map[uint16]PeerStats{}}
	for i := range 2 {
		s.Registers[i], s.Hints[i], s.Acks[i] = d.regs[i].Load(), d.hints[i].Load(), d.acks[i].Load()
		s.Whole[i] = d.whole[i].Load()
	}
	for id, c := range d.pt.Load().ctrs {
		s.PerPeer[id] = PeerStats{Sent: c.sent.Load(), SentBytes: c.sentBytes.Load(), Received: c.rcvd.Load(), RcvdBytes: c.rcvdBytes.Load()}
	}
	return s
}
