package ringstate

import (
	"bytes"
	"crypto/sha256"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/vipstate"
)

// configProp encodes a reload of content on top of base: the table grows
// by VIP 5 and VIP 1 goes.
func configProp(t *testing.T, id uint64, base [32]byte, content string) ring.Proposal {
	t.Helper()
	return configPropDrop(t, id, base, content, nil)
}

// configPropDrop is configProp with --drop-flows for drop.
func configPropDrop(t *testing.T, id uint64, base [32]byte, content string, drop []netip.Addr) ring.Proposal {
	t.Helper()
	desired, err := vipstate.New(3, []vipstate.Row{{VIP: vip(2)}, {VIP: vip(3)},
		{VIP: vip(4), Preferred: 3, Persistence: vipstate.PersistPreferred}, {VIP: vip(5)}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ConfigChange{Base: base, Balance: vipstate.BalanceConfig{Threshold: 40}, Content: []byte(content),
		From: initial(t), Desired: desired, DropVIPs: drop}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return ring.Proposal{ID: id, Kind: ProposeConfig, Data: b}
}

func epochOf(t *testing.T, cs []ring.Carriage) Epoch {
	t.Helper()
	e, ok := CurrentEpoch(cs)
	if !ok {
		t.Fatal("no config epoch on the token")
	}
	return e
}

// TestConfigEpoch: a reload applies at the proposer's turn as one change
// (epoch, table and balance together), its content rides on the token
// until every member has committed it, and a second reload of the same
// file is a no-op while a reload from a stale base is refused.
func TestConfigEpoch(t *testing.T) {
	h := New(Config{Initial: initial(t), Balance: vipstate.DefaultBalanceConfig()})
	members := []ring.NodeID{1, 2, 3}
	cs := cars(h, ring.TokenView{Self: 1, Members: []ring.NodeID{1}, Alone: true})
	if _, ok := CurrentEpoch(cs); ok {
		t.Fatal("an epoch before any reload")
	}
	// File hashes ride in an epoch-0 carriage, which changes no reload's
	// base.
	k, data := ProposeFileHash(sha256.Sum256([]byte("old file")))
	cs = cars(h, ring.TokenView{Self: 3, Members: members, Carriages: cs, Proposals: []ring.Proposal{{ID: 1, Kind: k, Data: data}}})
	if e := epochOf(t, cs); e.Epoch != 0 || len(e.Files) != 1 || e.Files[0].Node != 3 {
		t.Fatalf("after node 3's file report: %+v", e)
	}
	turn := h.OnToken(ring.TokenView{Self: 2, Members: members, Carriages: cs,
		Proposals: []ring.Proposal{configProp(t, 7, [32]byte{}, "new file")}})
	if diff := cmp.Diff([]ring.Result{{ID: 7}}, turn.Results); diff != "" {
		t.Fatalf("results (-want +got):\n%s", diff)
	}
	cs = turn.Carriages
	e := epochOf(t, cs)
	if e.Epoch != 1 || e.Hash != sha256.Sum256([]byte("new file")) || string(e.Content) != "new file" ||
		e.Proposer != 2 || e.Balance.Threshold != 40 || !slicesEqual(e.Seen, NodeSet{2}) {
		t.Fatalf("epoch after the reload: %+v", e)
	}
	tb, _, _ := Table(cs)
	if _, ok := tb.Lookup(vip(1)); ok {
		t.Error("VIP 1 still in the table")
	}
	if r, ok := tb.Lookup(vip(5)); !ok || r.Current == vipstate.None {
		t.Errorf("VIP 5 not placed at the same turn: %+v %v", r, ok)
	}
	// Nodes 3 and 1 commit it; the content stays until node 2, which
	// finds every member in Seen, strips it.
	for _, self := range []ring.NodeID{3, 1} {
		cs = cars(h, ring.TokenView{Self: self, Members: members, Carriages: cs})
		if e := epochOf(t, cs); len(e.Content) == 0 {
			t.Fatalf("content stripped at node %d, before every member had it", self)
		}
	}
	cs = cars(h, ring.TokenView{Self: 2, Members: members, Carriages: cs})
	if e := epochOf(t, cs); e.Epoch != 1 || len(e.Content) != 0 || len(e.Seen) != 0 || len(e.Files) != 1 {
		t.Fatalf("after a rotation: %+v", e)
	}
	// The same file again (another node reloaded it): nothing changes.
	turn = h.OnToken(ring.TokenView{Self: 3, Members: members, Carriages: cs,
		Proposals: []ring.Proposal{configProp(t, 8, [32]byte{}, "new file")}})
	if turn.Results[0].Err != "" || epochOf(t, turn.Carriages).Epoch != 1 {
		t.Fatalf("same content: %+v, epoch %d", turn.Results, epochOf(t, turn.Carriages).Epoch)
	}
	// Another file read before epoch 1: refused, the token unchanged.
	turn = h.OnToken(ring.TokenView{Self: 3, Members: members, Carriages: cs,
		Proposals: []ring.Proposal{configProp(t, 9, sha256.Sum256([]byte("old file")), "other file")}})
	if !strings.Contains(turn.Results[0].Err, ErrStaleConfig.Error()) || epochOf(t, turn.Carriages).Epoch != 1 {
		t.Fatalf("stale base accepted: %+v", turn.Results)
	}
	// On top of epoch 1: epoch 2.
	turn = h.OnToken(ring.TokenView{Self: 3, Members: members, Carriages: cs,
		Proposals: []ring.Proposal{configProp(t, 10, sha256.Sum256([]byte("new file")), "other file")}})
	if turn.Results[0].Err != "" || epochOf(t, turn.Carriages).Epoch != 2 {
		t.Fatalf("reload on top of epoch 1: %+v", turn.Results)
	}
}

func slicesEqual(a, b NodeSet) bool { return cmp.Equal(a, b) }

// TestConfigEpochDropFlows: a reload with --drop-flows puts the removed
// VIPs on the epoch, where they ride with the content and go with it; the
// same file reloaded without the flag first (another node's SIGHUP won
// the race) leaves a later reload with the flag a new epoch of the same
// content that carries them; without the flag, epochs encode as version 1.
func TestConfigEpochDropFlows(t *testing.T) {
	h := New(Config{Initial: initial(t), Balance: vipstate.DefaultBalanceConfig()})
	members := []ring.NodeID{1, 2, 3}
	cs := cars(h, ring.TokenView{Self: 1, Members: members})
	drop := []netip.Addr{vip(1)}
	turn := h.OnToken(ring.TokenView{Self: 2, Members: members, Carriages: cs,
		Proposals: []ring.Proposal{configPropDrop(t, 1, [32]byte{}, "new file", drop)}})
	if turn.Results[0].Err != "" {
		t.Fatal(turn.Results)
	}
	cs = turn.Carriages
	if e := epochOf(t, cs); e.Epoch != 1 || !cmp.Equal(e.DropVIPs, drop, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })) {
		t.Fatalf("epoch with --drop-flows: %+v", e)
	}
	if b, _ := carriage(cs, KindConfigEpoch); b[0] != 2 {
		t.Errorf("an epoch with flows to drop encodes as version %d, want 2", b[0])
	}
	for _, self := range []ring.NodeID{3, 1, 2} {
		cs = cars(h, ring.TokenView{Self: self, Members: members, Carriages: cs})
	}
	if e := epochOf(t, cs); len(e.Content) != 0 || len(e.DropVIPs) != 0 {
		t.Fatalf("after a rotation the flows to drop are still on the token: %+v", e)
	}
	if b, _ := carriage(cs, KindConfigEpoch); b[0] != 1 {
		t.Errorf("a stripped epoch encodes as version %d, want 1", b[0])
	}

	// Epoch 2 applied without the flag; the same file with it, from
	// another node that read it before: epoch 3, same content, the VIPs.
	turn = h.OnToken(ring.TokenView{Self: 3, Members: members, Carriages: cs,
		Proposals: []ring.Proposal{configProp(t, 2, sha256.Sum256([]byte("new file")), "file 2")}})
	cs = turn.Carriages
	if e := epochOf(t, cs); e.Epoch != 2 || len(e.DropVIPs) != 0 {
		t.Fatalf("epoch 2: %+v", e)
	}
	drop = []netip.Addr{vip(2), vip(3)}
	turn = h.OnToken(ring.TokenView{Self: 1, Members: members, Carriages: cs,
		Proposals: []ring.Proposal{configPropDrop(t, 3, sha256.Sum256([]byte("new file")), "file 2", drop)}})
	e := epochOf(t, turn.Carriages)
	if turn.Results[0].Err != "" || e.Epoch != 3 || e.Hash != sha256.Sum256([]byte("file 2")) || len(e.DropVIPs) != 2 || string(e.Content) != "file 2" {
		t.Fatalf("the same file with --drop-flows: %+v, epoch %+v", turn.Results, e)
	}
	tb2, _, _ := Table(cs)
	tb3, _, _ := Table(turn.Carriages)
	if !reflect.DeepEqual(tb2.Rows(), tb3.Rows()) {
		t.Errorf("the table changed with the same content:\n%v\n%v", tb2.Rows(), tb3.Rows())
	}
	// The same again while it still rides: nothing.
	turn = h.OnToken(ring.TokenView{Self: 2, Members: members, Carriages: turn.Carriages,
		Proposals: []ring.Proposal{configPropDrop(t, 4, sha256.Sum256([]byte("new file")), "file 2", drop)}})
	if e := epochOf(t, turn.Carriages); e.Epoch != 3 {
		t.Errorf("the same drop twice made epoch %d", e.Epoch)
	}

	// Encoding: out of order, not IPv4, or in epoch 0 is refused.
	for _, bad := range []Epoch{
		{Epoch: 1, DropVIPs: []netip.Addr{vip(2), vip(1)}},
		{Epoch: 1, DropVIPs: []netip.Addr{netip.MustParseAddr("2001:db8::1")}},
		{DropVIPs: []netip.Addr{vip(1)}},
	} {
		if _, err := bad.MarshalBinary(); err == nil {
			t.Errorf("%+v encodes", bad)
		}
	}
}

func FuzzEpoch(f *testing.F) {
	e, _ := Epoch{Epoch: 3, Hash: sha256.Sum256([]byte("x")), Proposer: 2, Content: []byte("x"), Seen: NodeSet{1, 2}}.MarshalBinary()
	f.Add(e) // epoch 3 with its content, seen by nodes 1 and 2
	e, _ = Epoch{Epoch: 1, Files: []FileHash{{Node: 1}, {Node: 3, Hash: [6]byte{1, 2, 3, 4, 5, 6}}}}.MarshalBinary()
	f.Add(e)                             // stripped
	f.Add([]byte{1, 0, 0, 0})            // short
	f.Add(append(e[:len(e)-1], 0xff, 1)) // content length past the end
	c, _ := ConfigChange{Content: []byte("c")}.MarshalBinary()
	f.Add(c) // a config change with two empty tables
	e, _ = Epoch{Epoch: 2, Hash: sha256.Sum256([]byte("y")), Content: []byte("y"), DropVIPs: []netip.Addr{vip(1), vip(5)}}.MarshalBinary()
	f.Add(e) // version 2: flows to drop
	c, _ = ConfigChange{Content: []byte("c"), DropVIPs: []netip.Addr{vip(1)}}.MarshalBinary()
	f.Add(c)
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Epoch
		if e.UnmarshalBinary(b) == nil {
			again, err := e.MarshalBinary()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("epoch % x re-encodes to % x, %v", b, again, err)
			}
		}
		var c ConfigChange
		if c.UnmarshalBinary(b) == nil {
			if _, err := c.MarshalBinary(); err != nil {
				t.Fatalf("config change % x does not re-encode: %v", b, err)
			}
		}
	})
}
