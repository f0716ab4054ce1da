package ring

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// net is a minimal in-package harness: nodes wired directly, packets
// delivered in order, or shuffled and duplicated, or dropped by a filter.
type net struct {
	nodes   map[NodeID]*Node
	q       []flight
	drop    func(from NodeID, p Packet) bool
	shuffle *rand.Rand
	states  map[NodeID]*State
	events  []Event
	left    map[NodeID]bool
}

type flight struct {
	from NodeID
	p    Packet
}

func newNet(t *testing.T, ids []NodeID, mod func(*Config)) *net {
	t.Helper()
	w := &net{nodes: map[NodeID]*Node{}, states: map[NodeID]*State{}, left: map[NodeID]bool{}}
	for _, id := range ids {
		c := TestConfig()
		c.ID, c.Nodes = id, ids
		seed := uint64(id)
		c.Rand = rand.New(rand.NewPCG(seed, 1)).Uint64
		if mod != nil {
			mod(&c)
		}
		n, err := NewNode(c)
		if err != nil {
			t.Fatal(err)
		}
		w.nodes[id] = n
	}
	return w
}

func (w *net) drain(id NodeID) {
	n := w.nodes[id]
	for n.HasReady() {
		r := n.Ready()
		for _, p := range r.Packets {
			w.q = append(w.q, flight{id, p})
		}
		if r.State != nil {
			w.states[id] = r.State
		}
		w.events = append(w.events, r.Events...)
		if r.Left {
			w.left[id] = true
		}
	}
}

// tick ticks every node once and delivers until quiet.
func (w *net) tick(dead ...NodeID) {
	for _, id := range w.sorted() {
		if !slices.Contains(dead, id) {
			w.nodes[id].Tick()
			w.drain(id)
		}
	}
	for len(w.q) > 0 {
		if w.shuffle != nil {
			i := w.shuffle.IntN(len(w.q))
			w.q[0], w.q[i] = w.q[i], w.q[0]
			if w.shuffle.IntN(4) == 0 {
				w.q = append(w.q, w.q[0])
			}
		}
		f := w.q[0]
		w.q = w.q[1:]
		if slices.Contains(dead, f.p.To) || (w.drop != nil && w.drop(f.from, f.p)) {
			continue
		}
		if err := w.nodes[f.p.To].Step(f.from, f.p.Path, f.p.Data); err != nil {
			panic(err)
		}
		w.drain(f.p.To)
	}
}

func (w *net) sorted() []NodeID {
	var ids []NodeID
	for id := range w.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"ok", func(*Config) {}, ""},
		{"no id", func(c *Config) { c.ID = 0 }, "Config.ID is 0"},
		{"not in map", func(c *Config) { c.ID = 9 }, "not in the node map"},
		{"dup", func(c *Config) { c.Nodes = []NodeID{1, 2, 2} }, "appears twice"},
		{"paths", func(c *Config) { c.Paths = 0 }, "Paths is 0"},
		{"holder", func(c *Config) { c.Holder = nil }, "Holder is nil"},
		{"rand", func(c *Config) { c.Rand = nil }, "Rand is nil"},
		{"ack", func(c *Config) { c.AckTimeout = 0 }, "AckTimeout is 0"},
		{"token loss", func(c *Config) { c.TokenLoss = 3 }, "shorter than the token's longest healthy absence"},
		{"min rotation", func(c *Config) { c.MinRotation = -1 }, "MinRotation is -1"},
		{"ack budget", func(c *Config) { c.AckTimeout, c.AckRetries = 1, 0 }, "ack budget"},
	} {
		c := TestConfig()
		tc.mod(&c)
		_, err := NewNode(c)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if (tc.want == "") != (err == nil) || !strings.Contains(got, tc.want) {
			t.Errorf("%s: err %q, want containing %q", tc.name, got, tc.want)
		}
	}
}

// A lone node forms a ring alone after JoinTimeout; the Holder sees Alone.
func TestAloneAfterJoinTimeout(t *testing.T) {
	var views []TokenView
	w := newNet(t, []NodeID{1, 2, 3}, func(c *Config) {
		c.Holder = HolderFunc(func(v TokenView) []Carriage { views = append(views, v); return v.Carriages })
	})
	jt := TestConfig().JoinTimeout
	for i := 0; i < jt-1; i++ {
		w.tick(2, 3)
	}
	if len(views) != 0 || w.states[1] != nil {
		t.Fatalf("formed a ring before JoinTimeout: %+v", views)
	}
	w.tick(2, 3)
	if len(views) != 1 || !views[0].Alone || !slices.Equal(views[0].Members, []NodeID{1}) {
		t.Fatalf("after JoinTimeout: views %+v, want one Alone view with members [1]", views)
	}
	if s := w.states[1]; s == nil || !s.Alone || s.Holder != 1 {
		t.Fatalf("state %+v, want alone held by 1", s)
	}
}

// A carriage of 300 kB crosses the ring intact with frames shuffled and
// duplicated: fragmentation, reassembly, duplicate suppression.
func TestLargeCarriageShuffled(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 300_000/16)
	w := newNet(t, []NodeID{1, 2, 3}, func(c *Config) {
		c.Holder = HolderFunc(func(v TokenView) []Carriage {
			if v.Carriages == nil {
				return []Carriage{{Kind: 1, Data: big}}
			}
			return v.Carriages
		})
	})
	w.shuffle = rand.New(rand.NewPCG(7, 7))
	for i := 0; i < 400; i++ {
		w.tick()
	}
	for _, id := range []NodeID{1, 2, 3} {
		s := w.states[id]
		if s == nil || len(s.Carriages) != 1 || !bytes.Equal(s.Carriages[0].Data, big) {
			t.Fatalf("node %d state lacks the 300 kB carriage", id)
		}
		if !slices.Equal(s.Members, []NodeID{1, 2, 3}) {
			t.Errorf("node %d members %v, want [1 2 3]", id, s.Members)
		}
		if st := w.nodes[id].Status(); st.Counters.TokensAccepted < 3 {
			t.Errorf("node %d accepted %d tokens, want a few rotations", id, st.Counters.TokensAccepted)
		}
	}
}

// A destination that stops answering is dropped exactly when the ack
// budget runs out, and the Holder at the sender sees it in Dropped.
func TestDropAfterAckBudget(t *testing.T) {
	var dropped []NodeID
	w := newNet(t, []NodeID{1, 2, 3}, func(c *Config) {
		c.Holder = HolderFunc(func(v TokenView) []Carriage {
			if v.Self == 1 {
				dropped = append(dropped, v.Dropped...)
			}
			return v.Carriages
		})
	})
	for i := 0; i < 300; i++ {
		w.tick()
	}
	// Node 2 goes silent while node 1 holds the token; wait until node 1
	// has sent it to node 2.
	for i := 0; i < 100 && !w.nodes[1].Status().Holding; i++ {
		w.tick()
	}
	w.drop = func(from NodeID, p Packet) bool { return p.To == 2 || from == 2 }
	for i := 0; i < 100 && !(w.nodes[1].Status().Passing && w.nodes[1].Status().PassTo == 2); i++ {
		w.tick(2)
	}
	st := w.nodes[1].Status()
	if !st.Passing || st.PassTo != 2 {
		t.Fatalf("node 1 never passed to node 2: %+v", st)
	}
	budget := TestConfig().AckBudget()
	ticks := 0
	dropped = nil
	for ; ticks < 3*budget && len(dropped) == 0; ticks++ {
		w.tick(2)
	}
	if diff := cmp.Diff([]NodeID{2}, dropped); diff != "" {
		t.Fatalf("dropped (-want +got):\n%s", diff)
	}
	if ticks < budget || ticks > budget+1 {
		t.Errorf("dropped after %d ticks, want the ack budget %d", ticks, budget)
	}
	if got := w.nodes[1].Status(); got.RingID == st.RingID {
		t.Error("the line after a drop kept its ring id; it must take a new one")
	}
	for i := 0; i < 50; i++ {
		w.tick(2)
	}
	if s := w.states[3]; !slices.Equal(s.Members, []NodeID{1, 3}) {
		t.Errorf("node 3 members %v, want [1 3]", s.Members)
	}
}

// A token older than one already seen is acked, not accepted, and its
// sender is told; the sender of a dead line goes to limbo (serves nothing).
func TestStaleTokenRejected(t *testing.T) {
	w := newNet(t, []NodeID{1, 2}, nil)
	for i := 0; i < 300; i++ {
		w.tick()
	}
	n2 := w.nodes[2]
	before := n2.Status()
	old := Message{Kind: MsgToken, RingID: before.RingID, Seq: before.MaxSeq - 1, Sender: 1, Dest: 2, Members: []NodeID{1, 2}}
	body, _ := old.MarshalBinary()
	fr, _ := Frame{Type: FrameData, MsgID: 424242, Count: 1, Payload: body}.MarshalBinary()
	if err := n2.Step(1, 0, fr); err != nil {
		t.Fatal(err)
	}
	r := n2.Ready()
	if after := n2.Status(); after.MaxSeq != before.MaxSeq || after.Counters.TokensStale != 1 {
		t.Fatalf("stale token changed the node: before %+v after %+v", before, after)
	}
	var ack, stale bool
	for _, p := range r.Packets {
		var f Frame
		if f.UnmarshalBinary(p.Data) == nil && f.Type == FrameAck && f.MsgID == 424242 {
			ack = true
		}
		if f.Type == FrameData {
			var m Message
			if m.UnmarshalBinary(f.Payload) == nil && m.Kind == MsgStale && m.Seq == old.Seq {
				stale = true
			}
		}
	}
	if !ack || !stale {
		t.Errorf("ack sent %v, stale notice sent %v; want both", ack, stale)
	}
}

// Two token lines over the same nodes whose seqs are close (two rings
// formed at the same start-up seq) would overtake each other forever under
// the seq rule alone. A node that went over to a newer line refuses the
// line it left, whatever its seq.
func TestLeftRingStaysLeft(t *testing.T) {
	n, err := NewNode(func() Config { c := TestConfig(); c.ID, c.Nodes = 2, []NodeID{1, 2, 3}; return c }())
	if err != nil {
		t.Fatal(err)
	}
	msgID := uint64(1000)
	deliver := func(ring, seq uint64) {
		t.Helper()
		msgID++
		tok := Message{Kind: MsgToken, RingID: ring, Seq: seq, Sender: 1, Dest: 2, Members: []NodeID{1, 2, 3}}
		body, _ := tok.MarshalBinary()
		fr, _ := Frame{Type: FrameData, MsgID: msgID, Count: 1, Payload: body}.MarshalBinary()
		if err := n.Step(1, 0, fr); err != nil {
			t.Fatal(err)
		}
		n.Ready()
	}
	const lineA, lineB = 0xaaaa, 0xbbbb
	deliver(lineA, 10)
	if st := n.Status(); st.RingID != lineA || st.Counters.TokensAccepted != 1 {
		t.Fatalf("first token not accepted: %+v", st)
	}
	deliver(lineB, 12) // newer: the node goes over to line B
	if st := n.Status(); st.RingID != lineB || st.Counters.TokensAccepted != 2 {
		t.Fatalf("newer line not accepted: %+v", st)
	}
	deliver(lineA, 40) // line A came round again, its seq now above B's
	st := n.Status()
	if st.RingID != lineB || st.Counters.TokensAccepted != 2 || st.Counters.TokensStale != 1 {
		t.Errorf("the line the node left was accepted again: ring %x, accepted %d, stale %d",
			st.RingID, st.Counters.TokensAccepted, st.Counters.TokensStale)
	}
	deliver(lineB, 41) // its own line goes on
	if st := n.Status(); st.RingID != lineB || st.Counters.TokensAccepted != 3 {
		t.Errorf("line B refused after line A's stale token: %+v", st)
	}
}

// A node alone holds the token for a whole MinRotation; a node that starts
// next to it gets the token within a few ticks, not a MinRotation later.
func TestAloneAddsJoinerAtOnce(t *testing.T) {
	w := newNet(t, []NodeID{1, 2}, nil)
	for i := 0; i < 300; i++ {
		w.tick(2) // node 2 not running yet
	}
	if st := w.nodes[1].Status(); st.Mode != ModeMember || len(st.Members) != 1 {
		t.Fatalf("node 1 is not alone: %+v", st)
	}
	for i := 1; i <= 10; i++ {
		w.tick()
		if w.nodes[2].Status().Mode == ModeMember {
			if i > 3 {
				t.Errorf("node 2 got the token %d ticks after it started, want at most 3", i)
			}
			return
		}
	}
	t.Fatalf("node 2 not a member 10 ticks after it started (MinRotation is %d)", TestConfig().MinRotation)
}

// A starting node that hears a ring's probes but cannot reach it (a
// one-way cut) does not wait for ever: only answers to its own hellos
// keep it waiting.
func TestStartingOneWayCut(t *testing.T) {
	w := newNet(t, []NodeID{1, 2, 3}, nil)
	for i := 0; i < 300; i++ {
		w.tick(3)
	}
	w.drop = func(from NodeID, p Packet) bool { return from == 3 } // nothing from node 3 arrives
	for i := 0; i < 10*TestConfig().JoinTimeout && w.nodes[3].Status().Mode == ModeStarting; i++ {
		w.tick()
	}
	if st := w.nodes[3].Status(); st.Mode != ModeMember || len(st.Members) != 1 {
		t.Errorf("node 3 after 10 join timeouts cut off one way: %v with members %v, want alone", st.Mode, st.Members)
	}
}

// urgentOnce marks the state urgent once, after armed is set.
type urgentOnce struct{ armed bool }

func (h *urgentOnce) OnToken(v TokenView) Turn {
	urgent := h.armed
	h.armed = false
	return Turn{Carriages: v.Carriages, Urgent: urgent}
}

// A Holder that marks its state Urgent makes the token go on without a
// hold (the harness delivers at once, so the next node has it in the same
// tick).
func TestUrgentHolderPassesAtOnce(t *testing.T) {
	h2 := &urgentOnce{}
	w := newNet(t, []NodeID{1, 2, 3}, func(c *Config) {
		if c.ID == 2 {
			c.Holder = h2
		}
	})
	for i := 0; i < 300; i++ {
		w.tick()
	}
	accepted := func(id NodeID) uint64 { return w.nodes[id].Status().Counters.TokensAccepted }
	check := func(urgent bool) {
		t.Helper()
		h2.armed = urgent
		a2, a3 := accepted(2), accepted(3)
		for i := 0; i < 100 && accepted(2) == a2; i++ {
			a3 = accepted(3) // at the start of the tick in which node 2 gets it
			w.tick()
		}
		if accepted(2) == a2 {
			t.Fatal("node 2 did not get the token in 100 ticks")
		}
		if passed := accepted(3) > a3; passed != urgent {
			t.Errorf("urgent %v: node 3 had the token in the tick node 2 got it: %v", urgent, passed)
		}
	}
	check(false)
	check(true)
	check(false)
}

// Graceful leave hands the state over: the leaver's Holder runs with
// Leaving=[self] and members without it, then Ready().Left.
func TestLeave(t *testing.T) {
	var leaveView *TokenView
	w := newNet(t, []NodeID{1, 2, 3}, func(c *Config) {
		c.Holder = HolderFunc(func(v TokenView) []Carriage {
			if len(v.Leaving) > 0 {
				leaveView = &v
			}
			return v.Carriages
		})
	})
	for i := 0; i < 300; i++ {
		w.tick()
	}
	w.nodes[2].Leave()
	w.drain(2)
	for i := 0; i < 100 && !w.left[2]; i++ {
		w.tick()
	}
	if !w.left[2] {
		t.Fatal("node 2 never left")
	}
	if leaveView == nil || leaveView.Self != 2 || !slices.Equal(leaveView.Members, []NodeID{1, 3}) {
		t.Fatalf("leave view %+v, want Self 2 with members [1 3]", leaveView)
	}
	if s := w.states[2]; len(s.Members) != 0 {
		t.Errorf("leaver's last state lists members %v; it must serve nothing", s.Members)
	}
	for i := 0; i < 100; i++ {
		w.tick(2)
	}
	if s := w.states[1]; !slices.Equal(s.Members, []NodeID{1, 3}) {
		t.Errorf("node 1 members %v, want [1 3]", s.Members)
	}
	if d := w.nodes[1].Status().Counters.Drops + w.nodes[3].Status().Counters.Drops; d != 0 {
		t.Errorf("%d drops after a graceful leave, want 0", d)
	}
}

// A Leave while the node's token is in flight (an ordinary pass, which
// still lists it) does not end with that hop's ack: the node leaves at its
// next hold, and hands its state over then.
func TestLeaveWhilePassing(t *testing.T) {
	w := newNet(t, []NodeID{1, 2, 3}, nil)
	for i := 0; i < 300; i++ {
		w.tick()
	}
	h := w.nodes[2]
	for i := 0; i < 500 && !h.Status().Passing; i++ {
		w.tick() // until node 2 holds the token, then tick it alone
		for h.Status().Holding && !h.Status().Passing {
			h.Tick()
			w.drain(2) // queued, not yet delivered
		}
	}
	if !h.Status().Passing {
		t.Fatal("node 2 never passed the token")
	}
	h.Leave()
	w.tick() // delivers the pass and its ack
	if w.left[2] {
		t.Fatal("node 2 left on the ack of a pass that still listed it")
	}
	for i := 0; i < 200 && !w.left[2]; i++ {
		w.tick()
	}
	if !w.left[2] {
		t.Fatal("node 2 never left")
	}
	for i := 0; i < 100; i++ {
		w.tick(2)
	}
	for _, id := range []NodeID{1, 3} {
		if s := w.states[id]; !slices.Equal(s.Members, []NodeID{1, 3}) {
			t.Errorf("node %d members %v, want [1 3]", id, s.Members)
		}
	}
	if d := w.nodes[1].Status().Counters.Drops + w.nodes[3].Status().Counters.Drops; d != 0 {
		t.Errorf("%d drops after a graceful leave, want 0", d)
	}
}

// Bad input is an error, never a panic, and never changes the ring.
func TestStepBadInput(t *testing.T) {
	n, _ := NewNode(TestConfig())
	for _, tc := range []struct {
		from NodeID
		path int
		data []byte
	}{
		{2, 0, nil}, {2, 0, []byte{9, 9}}, {1, 0, []byte{1, 2}}, {7, 0, []byte{1, 2}}, {2, 5, []byte{1, 2}},
		{2, 0, []byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0xff, 0xff}}, // fragment count beyond MaxMessage
	} {
		if err := n.Step(tc.from, tc.path, tc.data); err == nil {
			t.Errorf("Step(%d, %d, %x) accepted bad input", tc.from, tc.path, tc.data)
		}
	}
	if got := n.Status().Counters.BadInput; got != 6 {
		t.Errorf("BadInput = %d, want 6", got)
	}
}

// FuzzStep: any datagram sequence leaves the node without panics and with
// bounded reassembly state.
func FuzzStep(f *testing.F) {
	tok, _ := (&Message{Kind: MsgToken, RingID: 1, Seq: 5, Sender: 2, Dest: 1, Members: []NodeID{1, 2}}).MarshalBinary()
	fr, _ := Frame{Type: FrameData, MsgID: 1, Count: 1, Payload: tok}.MarshalBinary()
	f.Add(fr)                                                  // a token from node 2 for node 1
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 9, 1}) // fragment 0 of 9
	f.Fuzz(func(t *testing.T, b []byte) {
		n, _ := NewNode(TestConfig())
		for i := 0; i < 3; i++ {
			_ = n.Step(2, 0, b)
			if len(b) > 10 {
				b[9]++ // another message id
			}
			n.Tick()
			n.Ready()
		}
		if len(n.rl.in) > maxPartials {
			t.Fatalf("%d partial messages buffered", len(n.rl.in))
		}
		sum := 0
		for _, m := range n.rl.in {
			sum += m.bytes
		}
		if sum != n.rl.inBytes || sum > 4*n.cfg.MaxMessage {
			t.Fatalf("reassembly holds %d bytes, accounted %d, cap %d", sum, n.rl.inBytes, 4*n.cfg.MaxMessage)
		}
	})
}

// With one of two paths dead the ring runs on the other: a hop succeeds if
// any path delivers.
func TestOnePathDead(t *testing.T) {
	w := newNet(t, []NodeID{1, 2, 3}, func(c *Config) { c.Paths = 2 })
	w.drop = func(_ NodeID, p Packet) bool { return p.Path == 0 }
	for i := 0; i < 2000; i++ {
		w.tick()
	}
	var accepted, drops, queries uint64
	for _, id := range []NodeID{1, 2, 3} {
		st := w.nodes[id].Status()
		accepted += st.Counters.TokensAccepted
		drops += st.Counters.Drops
		queries += st.Counters.Queries
		if !slices.Equal(st.Members, []NodeID{1, 2, 3}) {
			t.Errorf("node %d members %v, want [1 2 3]", id, st.Members)
		}
	}
	// A healthy ring passes the token about once per hold plus a tick.
	least := uint64(2000/(TestConfig().Hold(3)+1)) * 3 / 4
	if drops != 0 || queries != 0 || accepted < least {
		t.Errorf("drops %d, 911s %d, tokens accepted %d; want 0, 0 and at least %d", drops, queries, accepted, least)
	}
}

// IdleTicks is not trivially 0: a member waiting for the token may sleep
// until its next timer (the simulator checks every promise in TestSim).
func TestIdleTicks(t *testing.T) {
	w := newNet(t, []NodeID{1, 2, 3}, nil)
	if got := w.nodes[1].IdleTicks(); got != 0 {
		t.Errorf("before the first tick IdleTicks = %d, want 0", got)
	}
	for i := 0; i < 300; i++ {
		w.tick()
	}
	max := 0
	for _, id := range []NodeID{1, 2, 3} {
		n := w.nodes[id]
		k := n.IdleTicks()
		if st := n.Status(); st.Holding && k >= TestConfig().Hold(3) {
			t.Errorf("holder %d idle for %d ticks, longer than its hold (%d)", id, k, TestConfig().Hold(3))
		}
		max = maxInt(max, k)
	}
	if max < 2 {
		t.Errorf("no node can sleep more than %d ticks in a healthy ring", max)
	}
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// TestFirstTryPaths: a message's first try goes on one path, the hedge on
// the other after AckTimeout/2 ticks, the resends on both; the path an ack
// came back on carries the next first try, and a first try acked in time
// is neither hedged nor resent.
func TestFirstTryPaths(t *testing.T) {
	c := TestConfig()
	c.Paths = 2          // AckTimeout 2: hedge after 1 tick, first resend after 2
	c.FixedTimers = true // the first resend at AckTimeout, though the peer was never timed (adapt_test.go)
	n, err := NewNode(c)
	if err != nil {
		t.Fatal(err)
	}
	// paths returns the paths of the frames of message id that went out.
	paths := func(id uint64) []int {
		ps := []int{}
		for _, p := range n.Ready().Packets {
			var f Frame
			if f.UnmarshalBinary(p.Data) == nil && f.Type == FrameData && f.MsgID == id && p.To == 2 {
				ps = append(ps, p.Path)
			}
		}
		return ps
	}
	hello := func() uint64 {
		return n.send(2, &Message{Kind: MsgHello, Purpose: PurposeProbe}, sendTag{kind: MsgHello})
	}
	ack := func(id uint64, path int) {
		b, _ := Frame{Type: FrameAck, MsgID: id}.AppendBinary(nil)
		if err := n.Step(2, path, b); err != nil {
			t.Fatal(err)
		}
	}

	id := hello()
	first := paths(id)
	if len(first) != 1 {
		t.Fatalf("first try on paths %v, want one path", first)
	}
	n.Tick()
	if diff := cmp.Diff([]int{1 - first[0]}, paths(id)); diff != "" {
		t.Errorf("hedge after AckTimeout/2 (-want +got):\n%s", diff)
	}
	n.Tick()
	if diff := cmp.Diff([]int{0, 1}, paths(id)); diff != "" {
		t.Errorf("first resend (-want +got):\n%s", diff)
	}
	ack(id, 1)

	for range 3 { // the ack's path carries every later first try
		id = hello()
		if diff := cmp.Diff([]int{1}, paths(id)); diff != "" {
			t.Errorf("first try after an ack on path 1 (-want +got):\n%s", diff)
		}
		ack(id, 1)
		n.Tick()
		n.Tick()
		if got := paths(id); len(got) != 0 {
			t.Errorf("message acked at once sent again on paths %v", got)
		}
	}
}
