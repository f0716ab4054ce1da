package ring

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// recordingHolder records every view and answers proposals: a proposal
// whose data is "bad" is refused.
type recordingHolder struct {
	views []TokenView
}

func (h *recordingHolder) OnToken(v TokenView) Turn {
	h.views = append(h.views, v)
	t := Turn{Carriages: v.Carriages}
	for _, p := range v.Proposals {
		r := Result{ID: p.ID}
		if string(p.Data) == "bad" {
			r.Err = "bad proposal"
		}
		t.Results = append(t.Results, r)
	}
	return t
}

// Proposals wait for the node's next turn as a member, reach the Holder
// once, in order, and their answers come out as events.
func TestProposalsReachHolderOnce(t *testing.T) {
	h2 := &recordingHolder{}
	w := newNet(t, []NodeID{1, 2, 3}, func(c *Config) {
		if c.ID == 2 {
			c.Holder = h2
		}
	})
	for i := 0; i < 300; i++ {
		w.tick()
	}
	id1, err1 := w.nodes[2].Propose(7, []byte("move"))
	data := []byte("bad")
	id2, err2 := w.nodes[2].Propose(7, data)
	data[0] = 'x' // the core keeps its own copy
	if err1 != nil || err2 != nil || id1 != 1 || id2 != 2 {
		t.Fatalf("Propose: ids %d %d errs %v %v, want 1 2 and no errors", id1, id2, err1, err2)
	}
	h2.views, w.events = nil, nil
	for i := 0; i < 100; i++ {
		w.tick()
	}
	var got []Proposal
	turns := 0
	for _, v := range h2.views {
		got = append(got, v.Proposals...)
		turns++
	}
	if turns < 2 {
		t.Fatalf("node 2 held the token %d times in 100 ticks, want several", turns)
	}
	want := []Proposal{{ID: 1, Kind: 7, Data: []byte("move")}, {ID: 2, Kind: 7, Data: []byte("bad")}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("proposals the Holder saw (-want +got):\n%s", diff)
	}
	var answers []string
	for _, e := range w.events {
		if e.Kind == EventApplied || e.Kind == EventRefused {
			answers = append(answers, fmt.Sprintf("n%d %v #%d %s", e.Node, e.Kind, e.Proposal, e.Err))
		}
	}
	if diff := cmp.Diff([]string{"n2 applied #1 ", "n2 refused #2 bad proposal"}, answers); diff != "" {
		t.Errorf("proposal events (-want +got):\n%s", diff)
	}
}

// A node that is not in a ring keeps its proposals; leaving refuses them.
func TestProposalsWaitForRingAndAreRefusedOnLeave(t *testing.T) {
	h := &recordingHolder{}
	w := newNet(t, []NodeID{1, 2}, func(c *Config) { c.Holder = h })
	if _, err := w.nodes[1].Propose(1, nil); err != nil {
		t.Fatal(err)
	}
	w.nodes[1].Leave() // starting: leaves at once
	w.drain(1)
	var refused []Event
	for _, e := range w.events {
		if e.Kind == EventRefused {
			refused = append(refused, e)
		}
	}
	if len(refused) != 1 || refused[0].Proposal != 1 || refused[0].Err == "" {
		t.Fatalf("events after leave %v, want proposal #1 refused with a reason", w.events)
	}
	if len(h.views) != 0 {
		t.Errorf("the Holder ran %d times for a node that never joined a ring", len(h.views))
	}
	if _, err := w.nodes[1].Propose(1, nil); !errors.Is(err, ErrLeft) {
		t.Errorf("Propose after leaving: %v, want ErrLeft", err)
	}
}

// In quorum mode Majority a minority ring does not apply proposals: they
// wait (a partitioned operator's move must not apply on the side that
// releases its VIPs).
func TestProposalsWaitForQuorum(t *testing.T) {
	h := &recordingHolder{}
	w := newNet(t, []NodeID{1, 2, 3}, func(c *Config) {
		c.Quorum = Majority
		if c.ID == 1 {
			c.Holder = h
		}
	})
	jt := TestConfig().JoinTimeout
	for i := 0; i < jt+50; i++ {
		w.tick(2, 3) // node 1 alone: no quorum
	}
	if _, err := w.nodes[1].Propose(1, []byte("p")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		w.tick(2, 3)
	}
	if len(h.views) == 0 {
		t.Fatal("node 1 alone never held the token")
	}
	for _, v := range h.views {
		if len(v.Proposals) != 0 {
			t.Fatalf("a minority ring handed the Holder proposals %v", v.Proposals)
		}
	}
	h.views = nil
	for i := 0; i < 400; i++ {
		w.tick()
	}
	var got []uint64
	for _, v := range h.views {
		for _, p := range v.Proposals {
			got = append(got, p.ID)
		}
	}
	if !slices.Equal(got, []uint64{1}) {
		t.Errorf("after the others joined, the Holder saw proposals %v, want [1]", got)
	}
}

// The queue is bounded.
func TestProposalsBounded(t *testing.T) {
	w := newNet(t, []NodeID{1, 2}, nil)
	for i := 0; i < MaxProposals; i++ {
		if _, err := w.nodes[1].Propose(1, nil); err != nil {
			t.Fatalf("proposal %d: %v", i+1, err)
		}
	}
	if _, err := w.nodes[1].Propose(1, nil); !errors.Is(err, ErrProposalsFull) {
		t.Errorf("proposal %d: %v, want ErrProposalsFull", MaxProposals+1, err)
	}
}

// SetLocal reaches the Holder at every turn from then on, as a copy.
func TestSetLocalInView(t *testing.T) {
	h := &recordingHolder{}
	w := newNet(t, []NodeID{1, 2}, func(c *Config) {
		if c.ID == 2 {
			c.Holder = h
		}
	})
	for i := 0; i < 200; i++ {
		w.tick()
	}
	load := []byte{1, 2, 3}
	w.nodes[2].SetLocal(Local{Unhealthy: true, Load: load})
	load[0] = 9
	h.views = nil
	for i := 0; i < 100; i++ {
		w.tick()
	}
	if len(h.views) == 0 {
		t.Fatal("node 2 never held the token")
	}
	for _, v := range h.views {
		if !v.Local.Unhealthy || !slices.Equal(v.Local.Load, []byte{1, 2, 3}) {
			t.Fatalf("view Local %+v, want unhealthy with load [1 2 3]", v.Local)
		}
	}
}
