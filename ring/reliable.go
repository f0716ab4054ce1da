package ring

import (
	"errors"
	"fmt"
)

// The reliable message layer (patent "Consistent State Sharing"): a message
// of any size is split into frames, every frame is acknowledged by the
// receiver on the path it arrived on, and unacknowledged frames are resent
// on every path with a timeout that doubles each time. The first try goes on
// one path only (the path the last ack from that node came back on: one
// that works), which halves the datagrams, and the wakeups, of a hop whose
// first try succeeds. If it is not acked within AckTimeout/2 ticks its
// frames go once on the other paths (the hedge, which completes the first
// try), so a message still fails only if a copy on every path was lost at
// every try; the hedge costs nothing while acks come back in time. After
// AckRetries resends without an ack for some frame the message fails and
// the protocol layer is told (the patent's callback). The receiver buffers fragments
// until the message is whole, then hands it up once: a window of recently
// completed message ids per sender absorbs duplicates, and reassembly by
// index absorbs reordering.

// sendTag tells the protocol layer what a message was, when it completes or fails.
type sendTag struct {
	kind    MsgKind
	seq     uint64 // token: its seq
	queryID uint64 // hello: the query it belongs to
}

type outMsg struct {
	id      uint64
	to      NodeID
	frames  [][]byte
	acked   []bool
	left    int   // frames not yet acked
	tries   int   // sends so far
	nextAt  int64 // tick of the next resend
	hedgeAt int64 // tick of the first try's send on the other paths; 0 = none pending
	first   int   // path of the first try
	timeout int   // current resend timeout, ticks
	tag     sendTag
	paths   uint8 // a bit per path the message went out on (Cause.Paths)
	lastTx  int64 // tick of the last (re)send, for the round trip
	firstTx int64 // tick of the first send
	// deferred: a stall (Lag) has postponed its timer once already.
	deferred bool
}

type inMsg struct {
	from   NodeID
	id     uint64
	parts  [][]byte
	have   int
	bytes  int
	lastAt int64
}

const (
	recentWindow     = 64 // completed message ids remembered per sender
	maxPartialPerSrc = 4  // messages being reassembled per sender
	maxPartials      = 64 // messages being reassembled in all
)

type recentIDs struct {
	ids  [recentWindow]uint64
	next int
}

func (r *recentIDs) has(id uint64) bool {
	for _, v := range r.ids {
		if v == id && id != 0 {
			return true
		}
	}
	return false
}

func (r *recentIDs) add(id uint64) {
	r.ids[r.next] = id
	r.next = (r.next + 1) % recentWindow
}

type reliable struct {
	out     []*outMsg
	in      []*inMsg
	inBytes int // payload bytes buffered in in
	recent  map[NodeID]*recentIDs
	nextID  uint64
	// lastAck is, per peer, its last ack: the path it arrived on (the
	// path of the next first try to it) and Config.Clock then
	// (Cause.LastAck; 0 without a Clock).
	lastAck map[NodeID]ackSeen
	// rtt is, per peer, the ticks from the last send of its latest
	// acknowledged message to the ack of its last frame (Cause.RTT).
	rtt map[NodeID]uint16
	// est is, per peer, the smoothed round trip of first tries (adapt.go).
	est map[NodeID]*rttEst
}

var errBadFrame = errors.New("ring: bad frame")

// send queues msg for node to and emits its first transmission.
func (n *Node) send(to NodeID, m *Message, tag sendTag) uint64 {
	body, err := m.AppendBinary(n.scratch[:0])
	if err != nil || len(body) > n.cfg.MaxMessage {
		// Our own message does not encode (a bug: callHolder keeps the
		// token within bounds). Nothing from the wire may stop the node,
		// so the message fails at the next tick as if never
		// acknowledged, and the protocol goes on from there.
		n.counters.EncodeFailures++
		n.rl.nextID++
		o := &outMsg{id: n.rl.nextID, to: to, tries: n.cfg.AckRetries + 1, nextAt: n.now + 1, tag: tag}
		n.rl.out = append(n.rl.out, o)
		return o.id
	}
	n.scratch = body[:0]
	count := (len(body) + maxFragment - 1) / maxFragment
	if count == 0 {
		count = 1
	}
	n.rl.nextID++
	if n.rl.nextID == 0 {
		n.rl.nextID++
	}
	o := &outMsg{
		id:      n.rl.nextID,
		to:      to,
		frames:  make([][]byte, count),
		acked:   make([]bool, count),
		left:    count,
		timeout: n.firstTimeout(to),
		tag:     tag,
	}
	for i := 0; i < count; i++ {
		lo, hi := i*maxFragment, (i+1)*maxFragment
		if hi > len(body) {
			hi = len(body)
		}
		f := Frame{Type: FrameData, MsgID: o.id, Index: uint16(i), Count: uint16(count), Payload: body[lo:hi]}
		o.frames[i], _ = f.AppendBinary(make([]byte, 0, frameHeader+hi-lo))
	}
	o.firstTx = n.now
	n.rl.out = append(n.rl.out, o)
	n.counters.MessagesSent++
	n.counters.BytesSent += uint64(len(body))
	n.transmit(o)
	return o.id
}

// transmit sends every unacked frame of o, the first time on one path
// (firstPath) with the hedge to the others armed, then on every path, and
// arms the timer.
func (n *Node) transmit(o *outMsg) {
	one := -1
	o.hedgeAt = 0
	if o.tries == 0 && n.cfg.Paths > 1 {
		one = n.firstPath(o)
		o.first = one
		if h := n.cfg.AckTimeout / 2; h >= 1 {
			o.hedgeAt = n.now + int64(h)
		}
	}
	for i, f := range o.frames {
		if o.acked[i] {
			continue
		}
		if one >= 0 {
			n.emit(o.to, one, f)
			o.paths |= pathBit(one)
			continue
		}
		for p := 0; p < n.cfg.Paths; p++ {
			n.emit(o.to, p, f)
			o.paths |= pathBit(p)
		}
	}
	o.lastTx = n.now
	o.tries++
	o.nextAt = n.now + int64(o.timeout)
}

// hedge sends o's unacked frames on every path but the first try's.
func (n *Node) hedge(o *outMsg) {
	o.hedgeAt = 0
	for i, f := range o.frames {
		if o.acked[i] {
			continue
		}
		for p := 0; p < n.cfg.Paths; p++ {
			if p != o.first {
				n.emit(o.to, p, f)
				o.paths |= pathBit(p)
			}
		}
	}
}

// ackSeen is what a node keeps of a peer's last ack.
type ackSeen struct {
	path int
	at   int64 // Config.Clock, Unix µs; 0 without a Clock
}

// pathBit is path p's bit in a Cause.Paths mask (MaxPaths is 8).
func pathBit(p int) uint8 { return 1 << (p & 7) }

// firstPath is the path of a message's first try: the path the last ack
// from its destination came back on, so a dead or lossy path is left after
// its first loss; before any ack from it, paths take turns by message id.
func (n *Node) firstPath(o *outMsg) int {
	if a, ok := n.rl.lastAck[o.to]; ok {
		return a.path
	}
	return int(o.id % uint64(n.cfg.Paths))
}

func (n *Node) emit(to NodeID, path int, data []byte) {
	n.ready.Packets = append(n.ready.Packets, Packet{To: to, Path: path, Data: append([]byte(nil), data...)})
	n.counters.PacketsSent++
}

// cancel forgets an outgoing message without callbacks.
func (n *Node) cancel(id uint64) {
	for i, o := range n.rl.out {
		if o.id == id {
			n.rl.out = append(n.rl.out[:i], n.rl.out[i+1:]...)
			return
		}
	}
}

// tickReliable resends what is due and fails what ran out of tries.
func (n *Node) tickReliable() {
	for i := 0; i < len(n.rl.out); i++ {
		o := n.rl.out[i]
		if o.hedgeAt != 0 && n.now >= o.hedgeAt && n.now < o.nextAt {
			n.counters.Resends++
			n.hedge(o)
		}
		if n.now < o.nextAt {
			continue
		}
		if o.tries > n.cfg.AckRetries {
			n.rl.out = append(n.rl.out[:i], n.rl.out[i+1:]...)
			i--
			n.counters.SendFailures++
			n.onSendFailed(o)
			continue
		}
		o.timeout *= 2
		n.counters.Resends++
		n.transmit(o)
	}
	// Forget reassemblies that stopped making progress: the sender has
	// given up on them by now.
	stale := int64(4*n.cfg.AckBudget() + 4)
	for i := 0; i < len(n.rl.in); i++ {
		if n.now-n.rl.in[i].lastAt > stale {
			n.dropPartial(n.rl.in[i])
			i--
		}
	}
}

// stepFrame handles one datagram payload: an ack, or a data frame that is
// acked at once and reassembled.
func (n *Node) stepFrame(from NodeID, path int, data []byte) error {
	var f Frame
	if err := f.UnmarshalBinary(data); err != nil {
		return err
	}
	if f.Type == FrameAck {
		for i, o := range n.rl.out {
			if o.id != f.MsgID || o.to != from {
				continue
			}
			if int(f.Index) >= len(o.frames) {
				return fmt.Errorf("%w: ack for fragment %d of a %d-fragment message", errBadFrame, f.Index, len(o.frames))
			}
			a := ackSeen{path: path}
			if n.cfg.Clock != nil {
				a.at = n.cfg.Clock()
			}
			n.rl.lastAck[from] = a
			if !o.acked[f.Index] {
				o.acked[f.Index] = true
				o.left--
			}
			if o.left == 0 {
				n.rl.rtt[from] = uint16(min(n.now-o.lastTx, NoRTT-1))
				e := n.rl.est[from]
				if e == nil {
					e = new(rttEst)
					n.rl.est[from] = e
				}
				e.sample(n.now - o.firstTx) // resent: an upper bound (adapt.go)
				n.rl.out = append(n.rl.out[:i], n.rl.out[i+1:]...)
				n.onSendDone(o)
			}
			return nil
		}
		n.counters.LateAcks++
		return nil
	}
	if int(f.Count)*maxFragment > n.cfg.MaxMessage+maxFragment {
		return fmt.Errorf("%w: %d fragments exceed MaxMessage %d", errBadFrame, f.Count, n.cfg.MaxMessage)
	}
	// Ack on the path it came by: a hop succeeds if any path delivers.
	ack, _ := Frame{Type: FrameAck, MsgID: f.MsgID, Index: f.Index}.AppendBinary(make([]byte, 0, ackFrameLen))
	n.ready.Packets = append(n.ready.Packets, Packet{To: from, Path: path, Data: ack})
	n.counters.PacketsSent++

	r := n.rl.recent[from]
	if r == nil {
		r = &recentIDs{}
		n.rl.recent[from] = r
	}
	if r.has(f.MsgID) {
		n.counters.Duplicates++
		return nil
	}
	var m *inMsg
	perSrc, oldest := 0, -1
	for i, x := range n.rl.in {
		if x.from == from {
			if x.id == f.MsgID {
				m = x
				break
			}
			perSrc++
			if oldest < 0 || x.lastAt < n.rl.in[oldest].lastAt {
				oldest = i
			}
		}
	}
	if m == nil {
		if perSrc >= maxPartialPerSrc {
			n.dropPartial(n.rl.in[oldest])
		}
		if len(n.rl.in) >= maxPartials {
			n.dropPartial(n.rl.in[0])
		}
		m = &inMsg{from: from, id: f.MsgID, parts: make([][]byte, f.Count)}
		n.rl.in = append(n.rl.in, m)
	}
	if len(m.parts) != int(f.Count) {
		return fmt.Errorf("%w: fragment count %d changed to %d within message %d", errBadFrame, len(m.parts), f.Count, f.MsgID)
	}
	m.lastAt = n.now
	if m.parts[f.Index] != nil {
		n.counters.Duplicates++
		return nil
	}
	if m.bytes+len(f.Payload) > n.cfg.MaxMessage {
		n.dropPartial(m)
		return fmt.Errorf("%w: message %d exceeds MaxMessage %d", errBadFrame, f.MsgID, n.cfg.MaxMessage)
	}
	// All reassembly buffers together stay under 4 × MaxMessage: the
	// oldest other partial messages give way.
	for n.rl.inBytes+len(f.Payload) > 4*n.cfg.MaxMessage && len(n.rl.in) > 1 {
		oldest := 0
		for i, x := range n.rl.in {
			if x != m && (n.rl.in[oldest] == m || x.lastAt < n.rl.in[oldest].lastAt) {
				oldest = i
			}
		}
		n.dropPartial(n.rl.in[oldest])
	}
	m.parts[f.Index] = append([]byte(nil), f.Payload...)
	m.have++
	m.bytes += len(f.Payload)
	n.rl.inBytes += len(f.Payload)
	if m.have < len(m.parts) {
		return nil
	}
	n.dropPartial(m)
	r.add(f.MsgID)
	body := make([]byte, 0, m.bytes)
	for _, p := range m.parts {
		body = append(body, p...)
	}
	var msg Message
	if err := msg.UnmarshalBinary(body); err != nil {
		return err
	}
	n.counters.MessagesReceived++
	return n.stepMessage(from, &msg)
}

func (n *Node) dropPartial(m *inMsg) {
	for i, x := range n.rl.in {
		if x == m {
			n.rl.inBytes -= m.bytes
			n.rl.in = append(n.rl.in[:i], n.rl.in[i+1:]...)
			return
		}
	}
}
