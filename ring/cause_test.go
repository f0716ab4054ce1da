package ring

import (
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// causesOf returns the causes of the membership events of node id.
func causesOf(evs []Event, id NodeID) []Cause {
	var out []Cause
	for _, e := range evs {
		if e.Node == id && e.Cause.Kind != 0 {
			out = append(out, e.Cause)
		}
	}
	return out
}

// A drop is reported once by the node whose hop failed, with the tries,
// the paths and the last round trip, and once by each other member when
// the token brings it (learnt), with the same cause.
func TestDropCauseTravels(t *testing.T) {
	w := newNet(t, []NodeID{1, 2, 3}, func(c *Config) { c.Paths = 2 })
	for i := 0; i < 300; i++ {
		w.tick()
	}
	for i := 0; i < 100 && !w.nodes[1].Status().Holding; i++ {
		w.tick()
	}
	w.drop = func(from NodeID, p Packet) bool { return p.To == 2 || from == 2 }
	w.events = nil
	for i := 0; i < 200; i++ {
		w.tick(2)
	}
	c := TestConfig()
	want := Cause{Kind: CauseDropped, Node: 2, By: 1, Tries: uint8(c.AckRetries + 1), Paths: 0b11, RTT: 0}
	got1 := causesOf(w.events, 1)
	if len(got1) != 1 {
		t.Fatalf("node 1 reported %v, want one drop", got1)
	}
	want.Seq = got1[0].Seq // the dropper's event precedes the pass that stamps it
	if diff := cmp.Diff([]Cause{want}, got1, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Seq" }, cmp.Ignore())); diff != "" {
		t.Errorf("dropper's cause (-want +got):\n%s", diff)
	}
	got3 := causesOf(w.events, 3)
	if len(got3) != 1 {
		t.Fatalf("node 3 reported %v, want the drop once", got3)
	}
	if got3[0].Seq == 0 {
		t.Error("the cause node 3 learnt has no seq")
	}
	got3[0].Seq = 0
	want.Seq = 0
	if diff := cmp.Diff(want, got3[0]); diff != "" {
		t.Errorf("node 3 learnt (-want +got):\n%s", diff)
	}
	for _, e := range w.events {
		if e.Node == 3 && e.Cause.Kind != 0 && e.Kind != EventLearnt {
			t.Errorf("node 3 event %v, want learnt", e)
		}
	}
	// Once every member has seen it the record is off the token.
	if n := len(w.nodes[1].causes) + len(w.nodes[3].causes); n != 0 {
		t.Errorf("%d causes still travel after a whole rotation", n)
	}
}

// A graceful leave reaches the others as "left".
func TestLeaveCauseTravels(t *testing.T) {
	w := newNet(t, []NodeID{1, 2, 3}, nil)
	for i := 0; i < 300; i++ {
		w.tick()
	}
	w.events = nil
	w.nodes[2].Leave()
	w.drain(2)
	for i := 0; i < 200; i++ {
		w.tick()
	}
	for _, id := range []NodeID{1, 3} {
		got := causesOf(w.events, id)
		if len(got) != 1 || got[0].Kind != CauseLeft || got[0].Node != 2 {
			t.Errorf("node %d reported %v, want n2 left", id, got)
		}
	}
}

// A token from a peer that carries no causes (an older version) still
// yields one event for the change it brings.
func TestChangeWithoutCause(t *testing.T) {
	c := TestConfig()
	c.ID = 2
	n, err := NewNode(c)
	if err != nil {
		t.Fatal(err)
	}
	send := func(m Message) {
		t.Helper()
		body, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		f, _ := Frame{Type: FrameData, MsgID: m.Seq, Count: 1, Payload: body}.MarshalBinary()
		if err := n.Step(1, 0, f); err != nil {
			t.Fatal(err)
		}
	}
	send(Message{Kind: MsgToken, RingID: 5, Seq: 10, Sender: 1, Dest: 2, Members: []NodeID{1, 2, 3}})
	n.Ready()
	for i := 0; i < 100 && !n.Status().Passing; i++ {
		n.Tick()
	}
	n.Ready()
	send(Message{Kind: MsgToken, RingID: 5, Seq: 20, Sender: 1, Dest: 2, Members: []NodeID{1, 2}})
	got := causesOf(n.Ready().Events, 2)
	if diff := cmp.Diff([]Cause{{Kind: CauseUnknown, By: 1}}, got); diff != "" {
		t.Errorf("causes (-want +got):\n%s", diff)
	}
}

func TestCausesRoundTrip(t *testing.T) {
	cs := causes{
		{Cause: Cause{Kind: CauseDropped, Node: 3, By: 1, Seq: 1 << 40, Tries: 3, Paths: 3, RTT: NoRTT, LastAck: 1_764_900_000_123_456}, hops: 2},
		{Cause: Cause{Kind: CauseMerged, Node: 4, By: 2, Ring: 0xabcdef, Seq: 9, Count: 7}, hops: 5},
	}
	b, err := cs.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got causes
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cs, got, cmp.AllowUnexported(causeRecord{})); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for i := 0; i < len(b); i++ {
		if err := got.UnmarshalBinary(b[:i]); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("truncated to %d of %d: err %v, want io.ErrUnexpectedEOF", i, len(b), err)
		}
	}
}

// FuzzCauses: no input panics, and whatever decodes re-encodes to the
// same bytes.
func FuzzCauses(f *testing.F) {
	// No causes.
	f.Add([]byte{0})
	// One: dropped (2) with 1 hop left, node 3 by node 1, ring 0, seq 7,
	// 3 tries on paths 0 and 1, RTT 1 tick, count 0, last ack at 0x0102 µs.
	f.Add([]byte{1, 2, 1, 0, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 3, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2})
	// A count of 17 (over MaxCauses) with nothing behind it.
	f.Add([]byte{17})
	f.Fuzz(func(t *testing.T, b []byte) {
		var cs causes
		if err := cs.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := cs.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded causes do not encode: %v", err)
		}
		if string(out) != string(b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, out)
		}
	})
}

// A Holder that returns more carriages than fit on the token (or the
// core's own kinds) does not stop the node: the turn is refused, counted,
// and the token goes on with the carriages it had.
func TestBadTurnKeepsCarriages(t *testing.T) {
	turns := 0
	w := newNet(t, []NodeID{1, 2}, func(c *Config) {
		c.Holder = HolderFunc(func(v TokenView) []Carriage {
			turns++
			if v.Self == 1 && turns > 4 {
				cs := make([]Carriage, MaxCarriages+1)
				for i := range cs {
					cs[i] = Carriage{Kind: uint16(i)}
				}
				return cs
			}
			return append(slices.Clone(v.Carriages), Carriage{Kind: KindCauses, Data: []byte{0xff}})
		})
	})
	for i := 0; i < 400; i++ {
		w.tick()
	}
	st := w.nodes[1].Status()
	if st.Counters.BadTurns == 0 || st.Counters.EncodeFailures != 0 {
		t.Errorf("counters %+v, want bad turns and no encode failure", st.Counters)
	}
	if st.Counters.TokensAccepted < 3 || w.nodes[2].Status().Counters.BadInput != 0 {
		t.Errorf("the ring stopped: %+v", st.Counters)
	}
	for _, s := range w.states {
		for _, c := range s.Carriages {
			if c.Kind >= KindCoreFirst {
				t.Errorf("a Holder's carriage of the core's kind %#x reached the state", c.Kind)
			}
		}
	}
}

// With a Clock, the drop's cause carries the dropper's time of the last
// ack from the dropped node, and every member learns it with the cause.
func TestDropCauseLastAck(t *testing.T) {
	var now int64 // the clock: µs, advanced by the test
	w := newNet(t, []NodeID{1, 2, 3}, func(c *Config) {
		c.Clock = func() int64 { return now }
	})
	for i := 0; i < 300; i++ {
		now += 2000
		w.tick()
	}
	for i := 0; i < 100 && !w.nodes[1].Status().Holding; i++ {
		now += 2000
		w.tick()
	}
	// The last ack node 2 gets through is timed by node 1 at ackAt; from
	// then on node 2 is silent.
	ackAt := w.nodes[1].rl.lastAck[2].at
	if ackAt == 0 {
		t.Fatal("node 1 recorded no ack time for node 2 while the ring ran")
	}
	w.drop = func(from NodeID, p Packet) bool { return p.To == 2 || from == 2 }
	w.events = nil
	for i := 0; i < 200; i++ {
		now += 2000
		w.tick(2)
	}
	for _, id := range []NodeID{1, 3} {
		got := causesOf(w.events, id)
		if len(got) != 1 || got[0].Kind != CauseDropped {
			t.Fatalf("node %d reported %v, want one drop", id, got)
		}
		if got[0].LastAck != ackAt {
			t.Errorf("node %d: drop cause LastAck %d, want node 1's last ack time %d", id, got[0].LastAck, ackAt)
		}
	}
}

// When the token dies with its holder, the regeneration's cause carries
// the regenerator's time of its last sight of the lost token, and names
// the holder as left out.
func TestRegenerationCauseLastSeen(t *testing.T) {
	var now int64
	w := newNet(t, []NodeID{1, 2, 3}, func(c *Config) {
		c.Clock = func() int64 { return now }
	})
	for i := 0; i < 300; i++ {
		now += 2000
		w.tick()
	}
	for i := 0; i < 100 && !w.nodes[2].Status().Holding; i++ {
		now += 2000
		w.tick()
	}
	if !w.nodes[2].Status().Holding {
		t.Fatal("node 2 never held the token")
	}
	seen := map[NodeID]int64{1: w.nodes[1].seenAt, 3: w.nodes[3].seenAt}
	w.drop = func(from NodeID, p Packet) bool { return p.To == 2 || from == 2 }
	w.events = nil
	for i := 0; i < 400; i++ {
		now += 2000
		w.tick(2)
	}
	var found bool
	for _, e := range w.events {
		if e.Kind != EventRegenerated {
			continue
		}
		found = true
		if !slices.Equal(e.Nodes, []NodeID{2}) {
			t.Errorf("regenerated by n%d leaving out %v, want [2]", e.Cause.By, e.Nodes)
		}
		if want := seen[e.Cause.By]; e.Cause.LastAck != want || want == 0 {
			t.Errorf("regeneration by n%d: LastAck %d, want its last sight of the token %d", e.Cause.By, e.Cause.LastAck, want)
		}
	}
	if !found {
		t.Fatalf("no regeneration after the holder died; events %v", w.events)
	}
}
