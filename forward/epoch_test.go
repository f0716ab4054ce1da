package forward

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMembershipEpoch: two nodes with the same members are in the same
// epoch whatever seq each installed it at; a different membership is
// stale or future by seq; 0 is never judged.
func TestMembershipEpoch(t *testing.T) {
	three := MembershipEpoch(1000, []uint16{3, 1, 2})
	threeLater := MembershipEpoch(1003, []uint16{1, 2, 3, 2})
	two := MembershipEpoch(2000, []uint16{1, 2})
	twoElsewhere := MembershipEpoch(2001, []uint16{2, 1})
	back := MembershipEpoch(3000, []uint16{1, 2, 3}) // n3 back
	for _, tt := range []struct {
		name          string
		mine, theirs  uint64
		want          EpochOrder
		wantTheirView EpochOrder
	}{
		{"same members, installed one hop apart", three, threeLater, EpochSame, EpochSame},
		{"same members, order and duplicates ignored", two, twoElsewhere, EpochSame, EpochSame},
		{"a member left: the sender is behind", two, three, EpochStale, EpochFuture},
		{"a member came back: same set as before", back, three, EpochSame, EpochSame},
		{"a member came back, sender still without it", back, two, EpochStale, EpochFuture},
		{"no epoch yet", 0, three, EpochUnknown, EpochUnknown},
	} {
		if got := CompareEpoch(tt.mine, tt.theirs); got != tt.want {
			t.Errorf("%s: CompareEpoch(mine, theirs) = %v, want %v", tt.name, got, tt.want)
		}
		if got := CompareEpoch(tt.theirs, tt.mine); got != tt.wantTheirView {
			t.Errorf("%s: CompareEpoch(theirs, mine) = %v, want %v", tt.name, got, tt.wantTheirView)
		}
	}
	if e := MembershipEpoch(0, nil); e == 0 {
		t.Error("an epoch is never 0")
	}
}

// TestSymmetricEpochHints: a hint is believed from the same or a newer
// epoch when its handler is a member here; from an older epoch, or naming
// a node that is not a member, it is refused and counted. Registers and
// acks are taken whatever their epoch.
func TestSymmetricEpochHints(t *testing.T) {
	c := newSymCluster(t, nil)
	old := MembershipEpoch(10, []uint16{1, 2})
	now := MembershipEpoch(20, []uint16{1, 2, 3})
	next := MembershipEpoch(30, []uint16{1, 2, 3, 4})
	f := c.f[2]
	f.SetMembership(c.dir, now)
	if got := f.Epoch(); got != now {
		t.Fatalf("Epoch() = %d, want %d", got, now)
	}
	k := func(p uint16) Key { k, _ := keyOf(protoUDP, client.As4(), server.As4(), p, 7000); return k }
	for _, tt := range []struct {
		name    string
		epoch   uint64
		handler uint16
		taken   bool
	}{
		{"same epoch", now, 1, true},
		{"no epoch", 0, 1, true},
		{"newer epoch", next, 3, true},
		{"older epoch", old, 1, false},
		{"handler not a member here", next, 4, false},
	} {
		p := uint16(20000 + len(tt.name))
		before := f.Stats().Sym.HintsStale
		f.Step(TunnelHeader{Type: TypeHint, Sender: 3, Receiver: 2, Epoch: tt.epoch, Handler: tt.handler, Flow: k(p)}, 0)
		got := f.sym.hints.get(k(p), 0) == tt.handler
		if got != tt.taken {
			t.Errorf("%s: hint taken %v, want %v", tt.name, got, tt.taken)
		}
		if stale := f.Stats().Sym.HintsStale - before; stale != map[bool]uint64{true: 0, false: 1}[tt.taken] {
			t.Errorf("%s: %d stale hints counted", tt.name, stale)
		}
	}
	f.Step(TunnelHeader{Type: TypeRegister, Sender: 1, Receiver: 2, Epoch: old, Handler: 1, Flow: k(30000)}, 0)
	if h := f.sym.reg.get(k(30000), 0); h != 1 {
		t.Errorf("a register from an older epoch: registry says %d, want 1 (the handler knows its flow)", h)
	}
}

// TestSymmetricMembershipChange: 60 flows handled by n1 (their replies
// arriving at n2) and 6 handled by n3, in a cluster of three. n3 leaves,
// then comes back. Each change invalidates exactly what it must: the
// hints naming n3 go when it leaves and no other hint goes; the handler
// registers again exactly the flows whose row moved to another node (not
// those that stayed, nor those that moved to the handler itself); every
// flow's reply still reaches its handler.
func TestSymmetricMembershipChange(t *testing.T) {
	c := newSymCluster(t, nil)
	ck := [32]byte{7}
	key, _ := DirectoryKey(ck[:])
	full, without3 := c.dir, NewDirectory(key, []uint16{1, 2})
	const n = 60
	for p := uint16(20000); p < 20000+n; p++ {
		c.send(1, udp(client, server, p, 7000, 10), ext, int_)
		c.send(2, udp(server, client, 7000, p, 10), int_, ext)
		c.send(2, udp(server, client, 7000, p, 10), int_, ext) // after the hint, if any
	}
	// Flows n3 handles (their first packet arrived there); their replies
	// at n2 leave a hint naming n3 when n3 is not their authoritative node
	// or n2 is.
	var at3 []uint16
	for p := uint16(21000); len(at3) < 6; p++ {
		k, _ := keyOf(protoUDP, client.As4(), server.As4(), p, 7000)
		if a, _ := full.Lookup(k); a == 1 {
			c.send(3, udp(client, server, p, 7000, 10), ext, int_)
			c.send(2, udp(server, client, 7000, p, 10), int_, ext)
			at3 = append(at3, p)
		}
	}
	hintsBy := func(f *Filter) map[uint16]int {
		m := map[uint16]int{}
		f.sym.hints.mu.Lock()
		defer f.sym.hints.mu.Unlock()
		for _, r := range f.sym.hints.m {
			m[r.node]++
		}
		return m
	}
	// moved counts the handler's flows (ports from 20000) whose row a
	// change from a to b moves to a node other than n1.
	moved := func(a, b *Directory) int {
		m := 0
		for p := uint16(20000); p < 20000+n; p++ {
			k, _ := keyOf(protoUDP, client.As4(), server.As4(), p, 7000)
			x, _ := a.Lookup(k)
			y, _ := b.Lookup(k)
			if x != y && y != 1 {
				m++
			}
		}
		return m
	}
	registers := func() int {
		r := 0
		for _, m := range c.steps {
			if m.Type == TypeRegister && m.Sender == 1 {
				r++
			}
		}
		return r
	}
	before := hintsBy(c.f[2])
	if before[3] != len(at3) || before[1] == 0 {
		t.Fatalf("n2's hints by handler before the change: %v, want %d naming n3 and some naming n1", before, len(at3))
	}
	reg2 := c.f[2].Stats().Sym.Registry

	for _, step := range []struct {
		name     string
		from, to *Directory
	}{{"n3 leaves", full, without3}, {"n3 comes back", without3, full}} {
		for _, f := range c.f {
			f.SetDirectory(step.to)
		}
		// Those naming n3 went when it left; none other, then or at its
		// return.
		if diff := cmp.Diff(map[uint16]int{1: before[1]}, hintsBy(c.f[2])); diff != "" {
			t.Errorf("%s: n2's hints by handler (-want +got):\n%s", step.name, diff)
		}
		if got := c.f[2].Stats().Sym.Registry; got < reg2 {
			t.Errorf("%s: n2's registry shrank from %d to %d", step.name, reg2, got)
		}
		c.steps = nil
		for p := uint16(20000); p < 20000+n; p++ {
			c.now += sec / 100
			c.send(1, udp(client, server, p, 7000, 10), ext, int_)
			path := c.send(2, udp(server, client, 7000, p, 10), int_, ext)
			if last := path[len(path)-1]; !last.Pass || last.Node != 1 {
				t.Errorf("%s: reply of flow %d: %v, want it to reach n1", step.name, p, path)
			}
		}
		if got, want := registers(), moved(step.from, step.to); got != want {
			t.Errorf("%s: n1 registered %d flows again, want exactly the %d whose row moved to another node", step.name, got, want)
		} else {
			t.Logf("%s: %d of %d flows registered again", step.name, got, n)
		}
	}
}

// TestSymmetricFormerAuthoritativeSendsOn: a node the flow's row moved away
// from (a member joined) still sends on a packet of hops 1 from a node on
// the previous membership, to the handler its registry knows.
func TestSymmetricFormerAuthoritativeSendsOn(t *testing.T) {
	c := newSymCluster(t, nil)
	ck := [32]byte{7}
	key, _ := DirectoryKey(ck[:])
	with4 := NewDirectory(key, []uint16{1, 2, 3, 4})
	var sp uint16
	for p := uint16(20000); ; p++ {
		k, _ := keyOf(protoUDP, client.As4(), server.As4(), p, 7000)
		a, _ := c.dir.Lookup(k)
		b, _ := with4.Lookup(k)
		if a == 3 && b == 4 {
			sp = p
			break
		}
	}
	c.send(1, udp(client, server, sp, 7000, 10), ext, int_) // n1 handles it, registered at n3
	c.f[3].SetDirectory(with4)
	pass, to, _ := c.f[3].Decide(udp(server, client, 7000, sp, 10), int_, ext, 2, 1, c.now)
	if pass || to != 1 {
		t.Errorf("reply at the former authoritative node: pass %v to %d, want sent on to n1", pass, to)
	}
}

// TestSymmetricFragmentsFollowRedirect: a fragmented reply (the server
// fragments once it learnt the tunnel's path MTU) arrives at a node
// without the flow's state: its first fragment is redirected, and its
// other fragments, which have no ports to find the flow by, go the same
// way instead of being dropped; at the handler all of them pass.
func TestSymmetricFragmentsFollowRedirect(t *testing.T) {
	for auth := uint16(1); auth <= 3; auth++ {
		c := newSymCluster(t, nil)
		sp := c.portWithAuth(protoUDP, 7000, auth)
		c.send(1, udp(client, server, sp, 7000, 10), ext, int_)
		reply := udp(server, client, 7000, sp, 3000)
		for _, off := range []int{0, 1480, 2960} {
			path := c.send(2, fragment(reply, off, 1480), int_, ext)
			if last := path[len(path)-1]; !last.Pass || last.Node != 1 {
				t.Errorf("auth n%d: fragment at offset %d: %v, want it to reach n1", auth, off, path)
			}
		}
		if fl := c.f[1].Flows(c.now, 0); len(fl) != 1 || fl[0].PacketsReply != 1 {
			t.Errorf("auth n%d: n1's flows %+v, want the reply's first fragment counted", auth, fl)
		}
	}
}
