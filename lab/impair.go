package lab

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Impairment is what Impair does to the frames of one direction of a path,
// in the manner of netem(8) (which kernels built without sch_netem, such as
// this lab's, lack). The zero value passes every frame unchanged.
type Impairment struct {
	Loss      float64       // fraction of frames dropped, 0..1 (1: the direction is cut)
	Delay     time.Duration // added to every frame that is not reordered
	Jitter    time.Duration // uniform in ±Jitter on top of Delay (delayed frames may overtake each other)
	Duplicate float64       // fraction of frames sent twice, 0..1
	// Reorder is, with Delay, the fraction of frames sent at once instead
	// of delayed, so they overtake the frames before them (netem's
	// "reorder").
	Reorder float64
}

// String describes the impairment as netem(8) would ("loss 5%", "delay 10ms
// 5ms reorder 30%").
func (m Impairment) String() string {
	s := ""
	add := func(f string, a ...any) {
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf(f, a...)
	}
	if m.Loss > 0 {
		add("loss %g%%", m.Loss*100)
	}
	if m.Delay > 0 || m.Jitter > 0 {
		add("delay %v", m.Delay)
		if m.Jitter > 0 {
			add("%v", m.Jitter)
		}
	}
	if m.Duplicate > 0 {
		add("duplicate %g%%", m.Duplicate*100)
	}
	if m.Reorder > 0 {
		add("reorder %g%%", m.Reorder*100)
	}
	if s == "" {
		return "none"
	}
	return s
}

// Impair makes node i's path on side ("ext" or "int") pass through a relay
// in the switch namespace that applies toNode to the frames the node
// receives and fromNode to the frames it sends (a nil Impairment passes them
// unchanged). The node's switch port leaves its bridge; a veth pair
// <port>-r / <port>-b takes its place (-b on the bridge) and a goroutine per
// direction copies frames between the port and -r through AF_PACKET
// sockets. The node's NIC keeps its carrier. Seed makes the random choices
// repeatable. Unimpair (or Close) removes the relay.
//
// The relay recomputes the UDP and TCP checksums of the IPv4 frames it
// forwards: veth senders leave them partial (CHECKSUM_PARTIAL), and a frame
// written to a packet socket is sent as it is.
func (l *Lab) Impair(i int, side string, toNode, fromNode *Impairment, seed uint64) error {
	if err := l.checkNode(i); err != nil {
		return err
	}
	if side != "ext" && side != "int" {
		return fmt.Errorf("impair node %d: side %q: want \"ext\" or \"int\"", i, side)
	}
	port := SwitchPort(i, side)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.relays[port] != nil {
		return fmt.Errorf("impair node %d: %s is impaired already (Unimpair it first)", i, port)
	}
	h, err := l.Netlink(l.Switch())
	if err != nil {
		return err
	}
	defer h.Close()
	r := &relay{port: port, veth: port + "-r", stop: make(chan struct{})}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: r.veth}, PeerName: r.bridgeVeth()}
	if err := h.LinkAdd(veth); err != nil {
		return fmt.Errorf("impair node %d: create veth %s: %w", i, r.veth, err)
	}
	// undo leaves the port as it was; its own errors would hide the first.
	undo := func() {
		delete(l.relays, port)
		h.LinkDel(veth)
		l.place(h, i)
	}
	for _, name := range []string{r.veth, r.bridgeVeth()} {
		if err := l.linkUp(l.Switch(), name); err != nil {
			undo()
			return fmt.Errorf("impair node %d: %w", i, err)
		}
	}
	l.relays[port] = r
	if err := l.place(h, i); err != nil {
		undo()
		return fmt.Errorf("impair node %d: %w", i, err)
	}
	// The sockets open once the port is off the bridge, so the relay never
	// copies the bridge's own frames back onto it.
	err = l.Do(l.Switch(), func() error {
		pc, err := relaySocket(port)
		if err != nil {
			return err
		}
		rc, err := relaySocket(r.veth)
		if err != nil {
			pc.Close()
			return err
		}
		r.conns = [2]*packet.Conn{pc, rc}
		return nil
	})
	if err != nil {
		undo()
		return fmt.Errorf("impair node %d: %w", i, err)
	}
	pc, rc := r.conns[0], r.conns[1]
	rng := rand.New(rand.NewPCG(seed, uint64(i)<<8|uint64(len(side))))
	r.start(rc, pc, toNode, rand.New(rand.NewPCG(rng.Uint64(), 1)))
	r.start(pc, rc, fromNode, rand.New(rand.NewPCG(rng.Uint64(), 2)))
	return nil
}

// Unimpair removes the relay Impair put on node i's side and puts the
// switch port back where the relay's veth was (its group's bridge, or none
// while the node is cut). Unimpairing a path without a relay is a no-op.
func (l *Lab) Unimpair(i int, side string) error {
	if err := l.checkNode(i); err != nil {
		return err
	}
	port := SwitchPort(i, side)
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.relays[port]
	if r == nil {
		return nil
	}
	h, err := l.Netlink(l.Switch())
	if err != nil {
		return fmt.Errorf("unimpair node %d: %w", i, err)
	}
	defer h.Close()
	delete(l.relays, port)
	r.close()
	// The port goes back even if the veth cannot be deleted: a side left
	// off its bridge would be a cut nobody asked for.
	var delErr error
	if v, err := h.LinkByName(r.veth); err == nil {
		if err := h.LinkDel(v); err != nil {
			delErr = fmt.Errorf("delete %s: %w", r.veth, err)
		}
	}
	if err := errors.Join(delErr, l.place(h, i)); err != nil {
		return fmt.Errorf("unimpair node %d: %w", i, err)
	}
	return nil
}

// relaySocket opens an AF_PACKET socket for every protocol on dev (in the
// calling thread's namespace) that ignores its own transmissions.
func relaySocket(dev string) (*packet.Conn, error) {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return nil, err
	}
	c, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
	if err != nil {
		return nil, fmt.Errorf("packet socket on %s: %w", dev, err)
	}
	sc, err := c.SyscallConn()
	if err == nil {
		var serr error
		err = sc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
		})
		if err == nil {
			err = serr
		}
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("packet socket on %s: ignore outgoing: %w", dev, err)
	}
	return c, nil
}

// relay copies frames both ways between a switch port and a veth on its
// bridge, impairing them.
type relay struct {
	port, veth string // the switch port and the relay's end of its veth pair
	conns      [2]*packet.Conn
	wg         sync.WaitGroup
	once       sync.Once
	stop       chan struct{}
}

// bridgeVeth is the other end of the relay's veth pair, on the bridge where
// the port was.
func (r *relay) bridgeVeth() string { return r.port + "-b" }

func (r *relay) close() {
	r.once.Do(func() {
		close(r.stop)
		for _, c := range r.conns {
			c.Close()
		}
		r.wg.Wait()
	})
}

// start runs one direction: frames read from src are written to dst.
func (r *relay) start(src, dst *packet.Conn, m *Impairment, rng *rand.Rand) {
	var imp Impairment
	if m != nil {
		imp = *m
	}
	q := &delayLine{wake: make(chan struct{}, 1)}
	send := func(b []byte) {
		if len(b) >= 14 {
			dst.WriteTo(b, &packet.Addr{HardwareAddr: net.HardwareAddr(b[0:6])})
		}
	}
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		q.run(r.stop, send)
	}()
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, _, err := src.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EBADF) {
					return
				}
				select {
				case <-r.stop:
					return
				default:
					continue
				}
			}
			if imp.Loss > 0 && rng.Float64() < imp.Loss {
				continue
			}
			b := append([]byte(nil), buf[:n]...)
			fixChecksum(b)
			copies := 1
			if imp.Duplicate > 0 && rng.Float64() < imp.Duplicate {
				copies = 2
			}
			for range copies {
				d := imp.Delay
				if imp.Jitter > 0 {
					d += time.Duration(rng.Int64N(int64(2*imp.Jitter)+1)) - imp.Jitter
				}
				if d <= 0 || (imp.Reorder > 0 && rng.Float64() < imp.Reorder) {
					send(b)
					continue
				}
				q.push(time.Now().Add(d), b)
			}
		}
	}()
}

// fixChecksum recomputes the UDP or TCP checksum of an unfragmented IPv4
// frame in place (RFC 768, RFC 793: over the pseudo-header and the segment).
func fixChecksum(b []byte) {
	if len(b) < 14+20 || binary.BigEndian.Uint16(b[12:]) != 0x0800 {
		return
	}
	ip := b[14:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if ip[0]>>4 != 4 || ihl < 20 || total < ihl || total > len(ip) || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
		return // not IPv4, truncated, or a fragment
	}
	seg := ip[ihl:total]
	var off int
	switch ip[9] {
	case unix.IPPROTO_UDP:
		off = 6
	case unix.IPPROTO_TCP:
		off = 16
	default:
		return
	}
	if len(seg) < off+2 {
		return
	}
	seg[off], seg[off+1] = 0, 0
	sum := uint32(0)
	add := func(p []byte) {
		for len(p) >= 2 {
			sum += uint32(binary.BigEndian.Uint16(p))
			p = p[2:]
		}
		if len(p) == 1 {
			sum += uint32(p[0]) << 8
		}
	}
	add(ip[12:20]) // source and destination
	sum += uint32(ip[9]) + uint32(len(seg))
	add(seg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	c := ^uint16(sum)
	if c == 0 && ip[9] == unix.IPPROTO_UDP {
		c = 0xffff // 0 means "no checksum" in UDP
	}
	binary.BigEndian.PutUint16(seg[off:], c)
}

// delayLine holds frames until their send time, earliest first (frames due
// at the same time keep their order).
type delayLine struct {
	mu   sync.Mutex
	h    frameHeap
	seq  uint64
	wake chan struct{}
}

func (q *delayLine) push(at time.Time, b []byte) {
	q.mu.Lock()
	q.seq++
	heap.Push(&q.h, delayed{at: at, seq: q.seq, b: b})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *delayLine) run(stop <-chan struct{}, send func([]byte)) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		q.mu.Lock()
		var due [][]byte
		now := time.Now()
		for len(q.h) > 0 && !q.h[0].at.After(now) {
			due = append(due, heap.Pop(&q.h).(delayed).b)
		}
		next := time.Hour
		if len(q.h) > 0 {
			next = q.h[0].at.Sub(now)
		}
		q.mu.Unlock()
		for _, b := range due {
			send(b)
		}
		t.Reset(next)
		select {
		case <-stop:
			return
		case <-q.wake:
		case <-t.C:
		}
	}
}

type delayed struct {
	at  time.Time
	seq uint64
	b   []byte
}

type frameHeap []delayed

func (h frameHeap) Len() int { return len(h) }
func (h frameHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h frameHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *frameHeap) Push(x any)   { *h = append(*h, x.(delayed)) }
func (h *frameHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
