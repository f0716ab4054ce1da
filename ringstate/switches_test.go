package ringstate

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/vipstate"
)

func switchProp(t *testing.T, id uint64, o SwitchOp) ring.Proposal {
	t.Helper()
	k, b, err := ProposeSwitchOp(o)
	if err != nil {
		t.Fatal(err)
	}
	return ring.Proposal{ID: id, Kind: k, Data: b}
}

// No switch carriage until an operator sets one: the defaults (the
// configured balancing, AUTO on) need no bytes on the token.
func TestSwitchesDefault(t *testing.T) {
	cfg := Config{Initial: initial(t), Balance: vipstate.DefaultBalanceConfig()}
	cs := cars(New(cfg), ring.TokenView{Self: 1, Members: []ring.NodeID{1, 2}})
	for _, c := range cs {
		if c.Kind == KindSwitches {
			t.Fatalf("switch carriage % x on a token nobody switched", c.Data)
		}
	}
	if got := cfg.Switches(cs); got != DefaultSwitches() {
		t.Errorf("switches %+v, want %+v", got, DefaultSwitches())
	}
	cfg.Balance.Enabled = false
	if got := cfg.Switches(cs); got.Balance || !got.Auto {
		t.Errorf("balancing configured off: switches %+v", got)
	}
}

// L.BAL off stops balancing moves at once, cluster-wide; on again, the
// busy node sheds a VIP.
func TestSwitchBalance(t *testing.T) {
	bal := vipstate.DefaultBalanceConfig()
	bal.Cooldown = 1
	cfg := Config{Initial: initial(t), Balance: bal}
	h := New(cfg)
	members := []ring.NodeID{1, 2}
	// Node 1 alone places every VIP on itself, then node 2 joins.
	cs := cars(h, ring.TokenView{Self: 1, Members: []ring.NodeID{1}, Alone: true})
	load := Load{}
	for i := 1; i <= 3; i++ {
		load[vip(i)] = 10_000_000
	}
	mine, _ := load.MarshalBinary()
	// L.BAL off, proposed at node 2 (any member may apply it).
	tn := h.OnToken(ring.TokenView{Self: 2, Members: members, Carriages: cs,
		Proposals: []ring.Proposal{switchProp(t, 1, SwitchOp{Switch: SwitchBalance, On: false})}})
	if len(tn.Results) != 1 || tn.Results[0].Err != "" {
		t.Fatalf("switch refused: %+v", tn.Results)
	}
	cs = tn.Carriages
	if got := cfg.Switches(cs); got.Balance || !got.Auto {
		t.Fatalf("after balance off: %+v", got)
	}
	count := func(cs []ring.Carriage, n vipstate.Node) int {
		k := 0
		for _, o := range owners(t, cs) {
			if o == n {
				k++
			}
		}
		return k
	}
	before := count(cs, 1)
	for range 20 {
		cs = cars(h, ring.TokenView{Self: 1, Members: members, Carriages: cs, Local: ring.Local{Load: mine}})
		cs = cars(h, ring.TokenView{Self: 2, Members: members, Carriages: cs})
	}
	if got := count(cs, 1); got != before {
		t.Fatalf("L.BAL off, yet node 1 went from %d to %d VIPs", before, got)
	}
	cs = cars(h, ring.TokenView{Self: 2, Members: members, Carriages: cs,
		Proposals: []ring.Proposal{switchProp(t, 2, SwitchOp{Switch: SwitchBalance, On: true})}})
	for range 20 {
		cs = cars(h, ring.TokenView{Self: 1, Members: members, Carriages: cs, Local: ring.Local{Load: mine}})
		cs = cars(h, ring.TokenView{Self: 2, Members: members, Carriages: cs})
	}
	if got := count(cs, 1); got >= before {
		t.Errorf("L.BAL on again, node 1 still owns %d of its %d VIPs with all the load", got, before)
	}
	// The carriage stays once set, also when it says what the default says.
	if b, _ := carriage(cs, KindSwitches); !bytes.Equal(b, []byte{1, switchBalance | switchAuto}) {
		t.Errorf("switch carriage % x", b)
	}
}

// AUTO off: a node that joins a running ring, and a node whose monitors
// recover, are closed until an operator opens them; AUTO on, they get
// VIPs by themselves.
func TestSwitchAuto(t *testing.T) {
	cfg := Config{Initial: initial(t)}
	h := New(cfg)
	two := []ring.NodeID{1, 2}
	three := []ring.NodeID{1, 2, 3}
	cs := cars(h, ring.TokenView{Self: 1, Members: two})
	cs = cars(h, ring.TokenView{Self: 2, Members: two, Carriages: cs,
		Proposals: []ring.Proposal{switchProp(t, 1, SwitchOp{Switch: SwitchAuto, On: false})}})
	// Node 3 joins; node 3 is the first to see it (from its side, 1 and 2
	// joined), then node 1.
	cs = cars(h, ring.TokenView{Self: 3, Members: three, Joined: []ring.NodeID{1, 2}, Carriages: cs})
	if !cmp.Equal(Closed(cs), NodeSet{3}) {
		t.Fatalf("AUTO off: joining node 3 did not close itself: closed %v", Closed(cs))
	}
	cs = cars(h, ring.TokenView{Self: 1, Members: three, Joined: []ring.NodeID{3}, Carriages: cs})
	if !cmp.Equal(Closed(cs), NodeSet{3}) {
		t.Fatalf("AUTO off: node 1 saw node 3 join: closed %v, want [3]", Closed(cs))
	}
	for range 3 {
		for _, n := range three {
			cs = cars(h, ring.TokenView{Self: n, Members: three, Carriages: cs})
		}
	}
	for i, o := range owners(t, cs) {
		if o == 3 {
			t.Errorf("closed joiner node 3 got %v (VIP 4 prefers it)", vip(i+1))
		}
	}
	// Node 2 fails its monitors, then recovers: closed, not back in service.
	cs = cars(h, ring.TokenView{Self: 2, Members: three, Carriages: cs, Local: ring.Local{Unhealthy: true}})
	cs = cars(h, ring.TokenView{Self: 2, Members: three, Carriages: cs})
	if !cmp.Equal(Closed(cs), NodeSet{2, 3}) || len(Unhealthy(cs)) != 0 {
		t.Fatalf("AUTO off, node 2 recovered: closed %v unhealthy %v, want closed [2 3]", Closed(cs), Unhealthy(cs))
	}
	// AUTO on: a later joiner is not closed, and a recovery is just that.
	cs = cars(h, ring.TokenView{Self: 1, Members: three, Carriages: cs,
		Proposals: []ring.Proposal{switchProp(t, 2, SwitchOp{Switch: SwitchAuto, On: true}),
			nodeProp(t, 3, NodeOp{Node: 2}), nodeProp(t, 4, NodeOp{Node: 3})}})
	if c := Closed(cs); len(c) != 0 {
		t.Fatalf("opened, still closed: %v", c)
	}
	cs = cars(h, ring.TokenView{Self: 2, Members: three, Joined: []ring.NodeID{3}, Carriages: cs})
	cs = cars(h, ring.TokenView{Self: 3, Members: three, Carriages: cs, Local: ring.Local{Unhealthy: true}})
	cs = cars(h, ring.TokenView{Self: 3, Members: three, Carriages: cs})
	for _, n := range three {
		cs = cars(h, ring.TokenView{Self: n, Members: three, Carriages: cs})
	}
	if c := Closed(cs); len(c) != 0 {
		t.Errorf("AUTO on: closed %v after a join and a recovery", c)
	}
	if o := owners(t, cs)[3]; o != 3 {
		t.Errorf("AUTO on: VIP 4 (prefers node 3) is on node %d", o)
	}
}

// A join looks the same from both sides; the smaller side is the one
// coming back, and equal sides close nobody.
func TestComingBack(t *testing.T) {
	for _, c := range []struct {
		members, joined, want []ring.NodeID
	}{
		{[]ring.NodeID{1, 2, 3}, []ring.NodeID{3}, []ring.NodeID{3}},    // seen by 1 or 2
		{[]ring.NodeID{1, 2, 3}, []ring.NodeID{1, 2}, []ring.NodeID{3}}, // seen by 3, which was alone
		{[]ring.NodeID{1, 2, 3, 4}, []ring.NodeID{3, 4}, nil},           // halves
		{[]ring.NodeID{1, 2}, nil, nil},                                 // no join
		{[]ring.NodeID{1, 2, 3, 4, 5}, []ring.NodeID{1, 2, 5}, []ring.NodeID{3, 4}},
	} {
		if got := comingBack(c.members, c.joined); !cmp.Equal(got, c.want) {
			t.Errorf("members %v joined %v: coming back %v, want %v", c.members, c.joined, got, c.want)
		}
	}
}

// A cold start (no carriages) closes nobody, whatever joins.
func TestSwitchAutoColdStart(t *testing.T) {
	cs := cars(New(Config{Initial: initial(t)}), ring.TokenView{Self: 1, Members: []ring.NodeID{1, 2}, Joined: []ring.NodeID{2}})
	if c := Closed(cs); len(c) != 0 {
		t.Errorf("closed %v at a cold start", c)
	}
}

func TestSwitchEncoding(t *testing.T) {
	for _, s := range []Switches{{}, {Balance: true}, {Auto: true}, DefaultSwitches()} {
		b, _ := s.MarshalBinary()
		var got Switches
		if err := got.UnmarshalBinary(b); err != nil || got != s {
			t.Errorf("%+v: % x decodes to %+v, %v", s, b, got, err)
		}
	}
	for _, b := range [][]byte{nil, {1}, {2, 0}, {1, 4}, {1, 0, 0}} {
		var s Switches
		if s.UnmarshalBinary(b) == nil {
			t.Errorf("% x decodes", b)
		}
	}
	for _, b := range [][]byte{nil, {1, 1}, {1, 3, 1}, {1, 1, 2}, {2, 1, 1}, {1, 1, 1, 0}} {
		var o SwitchOp
		if o.UnmarshalBinary(b) == nil {
			t.Errorf("switch op % x decodes", b)
		}
	}
	if _, err := ParseSwitch("lbal"); err == nil {
		t.Error("ParseSwitch accepted lbal")
	}
	// An unreadable carriage means the defaults.
	cs := []ring.Carriage{{Kind: KindSwitches, Data: []byte{9}}}
	if got := (Config{Balance: vipstate.DefaultBalanceConfig()}).Switches(cs); got != DefaultSwitches() {
		t.Errorf("unreadable carriage: %+v", got)
	}
}

func FuzzSwitches(f *testing.F) {
	f.Add([]byte{1, 3})
	f.Add([]byte{1, 2, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Switches
		if s.UnmarshalBinary(b) == nil {
			if again, _ := s.MarshalBinary(); !bytes.Equal(again, b) {
				t.Fatalf("switches % x re-encode to % x", b, again)
			}
		}
		var o SwitchOp
		if o.UnmarshalBinary(b) == nil {
			if again, err := o.MarshalBinary(); err != nil || !bytes.Equal(again, b) {
				t.Fatalf("switch op % x re-encodes to % x, %v", b, again, err)
			}
		}
	})
}
