package node

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/mgmt"
	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ringstate"
	"github.com/ringway/ringway/vipstate"
)

func testFile(t *testing.T) *config.Config {
	t.Helper()
	c := config.TestConfig()
	dir := t.TempDir()
	c.Cluster.KeyFile = filepath.Join(dir, "cluster.key")
	if err := config.WriteKey(c.Cluster.KeyFile); err != nil {
		t.Fatal(err)
	}
	c.Management.Listen = ""
	return &c
}

func TestNewRefusesBadSetup(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *config.Config)
		want string
	}{
		{"missing key", func(c *config.Config) { c.Cluster.KeyFile += ".nope" }, "cluster.key_file"},
		{"missing interface", func(c *config.Config) { c.Subnets[0].Interface = "nosuch0" }, "interface nosuch0"},
		{"primary address not on this host", func(c *config.Config) {
			c.Subnets[0].Interface, c.Subnets[1].Interface = "lo", "lo"
		}, "is not configured on any interface of this host: check nodes[n1].addresses"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testFile(t)
			tt.edit(c)
			n, err := New(Config{File: c})
			if err == nil {
				n.Close()
				t.Fatal("New accepted a node that cannot run")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestInitialTableFromConfig(t *testing.T) {
	c := testFile(t)
	c.VIPs = []config.VIPPolicy{
		{VIP: c.Subnets[0].VIPs[0], Preferred: c.Nodes[1].ID, Persistence: config.PersistPreferred, Group: "gw"},
		{VIP: c.Subnets[1].VIPs[0], Preferred: c.Nodes[1].ID, Persistence: config.PersistPreferred, Group: "gw"},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	tb, err := initialTable(c)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Len() != len(c.AllVIPs()) {
		t.Fatalf("table has %d rows, config %d VIPs", tb.Len(), len(c.AllVIPs()))
	}
	for _, vip := range []netip.Addr{c.Subnets[0].VIPs[0], c.Subnets[1].VIPs[0]} {
		r, _ := tb.Lookup(vip)
		if r.Preferred != 2 || r.Persistence != vipstate.PersistPreferred || r.Group == 0 || r.Current != vipstate.None {
			t.Errorf("%s: row %+v, want preferred node 2, persistence preferred, a group, no owner yet", vip, r)
		}
	}
	if names := groupNames(c); names[1] != "gw" {
		t.Errorf("group names %v, want 1 → gw", names)
	}
}

// fakeProposer records what the node proposes to the ring core.
type fakeProposer struct {
	props []ring.Proposal
	local []ring.Local
}

func (f *fakeProposer) Propose(_ context.Context, kind uint16, data []byte) (uint64, error) {
	id := uint64(len(f.props) + 1)
	f.props = append(f.props, ring.Proposal{ID: id, Kind: kind, Data: data})
	return id, nil
}

func (f *fakeProposer) SetLocal(_ context.Context, l ring.Local) error {
	f.local = append(f.local, l)
	return nil
}

// TestAdminOpsAppliedByHolder checks the path of `ringway vip move`: the
// operation is proposed to the ring core, and the Holder changes the table
// when the core hands it over at this node's turn.
func TestAdminOpsAppliedByHolder(t *testing.T) {
	c := testFile(t)
	tb, err := initialTable(c)
	if err != nil {
		t.Fatal(err)
	}
	h := ringstate.New(ringstate.Config{Initial: tb, Balance: balanceConfig(c)})
	view := ring.TokenView{Self: 1, Members: []ring.NodeID{1, 2, 3}}
	cs := h.OnToken(view).Carriages // cold start: the holder places every VIP
	vip := c.Subnets[0].VIPs[1]
	fp := &fakeProposer{}
	n := &Node{file: c, self: 1, proposer: fp, log: slog.New(slog.DiscardHandler)}
	names := []string{"n1", "n2", "n3"}
	n.names.Store(&names)
	if err := n.initConfig(c); err != nil {
		t.Fatal(err)
	}
	n.state.Store(&ring.State{Members: []ring.NodeID{1, 2, 3}, Carriages: cs})
	if err := n.VIP(mgmt.VIPOp{Op: "move", VIP: vip, Node: "n3"}); err != nil {
		t.Fatal(err)
	}
	if _, err := vipOp(mgmt.VIPOp{Op: "move", VIP: vip, Node: "n9"}, 0); err == nil {
		t.Error("a move to a node outside the node map was accepted")
	}
	if _, err := vipOp(mgmt.VIPOp{Op: "teleport", VIP: vip}, 0); err == nil {
		t.Error("an unknown operation was accepted")
	}
	if err := n.Node(mgmt.NodeOp{Op: "close", Node: "n2"}); err != nil {
		t.Fatal(err)
	}
	if len(fp.props) != 2 {
		t.Fatalf("%d proposals reached the core, want 2", len(fp.props))
	}
	view.Carriages = cs
	view.Proposals = fp.props
	turn := h.OnToken(view)
	if diff := cmp.Diff([]ring.Result{{ID: 1}, {ID: 2}}, turn.Results); diff != "" {
		t.Fatalf("results (-want +got):\n%s", diff)
	}
	got, ok, err := ringstate.Table(turn.Carriages)
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	r, _ := got.Lookup(vip)
	want := vipstate.Row{VIP: vip, Subnet: r.Subnet, Current: r.Current, Preferred: 3, Persistence: vipstate.PersistPreferred, Group: r.Group}
	if diff := cmp.Diff(want, r, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("row after move (-want +got):\n%s", diff)
	}
	if c := ringstate.Closed(turn.Carriages); !cmp.Equal(c, ringstate.NodeSet{2}) {
		t.Errorf("closed nodes %v after `node close n2`, want [2]", c)
	}
}

// TestVIPOnlyWhileServing: the API takes a VIP operation only from a node
// that can apply it soon, i.e. a member of a ring with quorum; anything else
// would sit in the queue until some later ring, if ever.
func TestVIPOnlyWhileServing(t *testing.T) {
	c := testFile(t)
	tb, err := initialTable(c)
	if err != nil {
		t.Fatal(err)
	}
	h := ringstate.New(ringstate.Config{Initial: tb, Balance: balanceConfig(c)})
	cs := h.OnToken(ring.TokenView{Self: 1, Members: []ring.NodeID{1, 2, 3}}).Carriages
	fp := &fakeProposer{}
	n := &Node{file: c, self: 1, proposer: fp, log: slog.New(slog.DiscardHandler)}
	names := []string{"n1", "n2", "n3"}
	n.names.Store(&names)
	if err := n.initConfig(c); err != nil {
		t.Fatal(err)
	}
	vip := c.Subnets[0].VIPs[0]
	closeVIP := mgmt.VIPOp{Op: "close", VIP: vip}
	tests := []struct {
		name  string
		state *ring.State
		op    mgmt.VIPOp
		want  error
	}{
		{"no ring yet", nil, closeVIP, errNoTable},
		{"member", &ring.State{Members: []ring.NodeID{1, 2, 3}, Carriages: cs}, closeVIP, nil},
		{"unknown VIP", &ring.State{Members: []ring.NodeID{1, 2, 3}, Carriages: cs}, mgmt.VIPOp{Op: "close", VIP: netip.MustParseAddr("192.0.2.1")}, mgmt.ErrNotFound},
		{"unknown node", &ring.State{Members: []ring.NodeID{1, 2, 3}, Carriages: cs}, mgmt.VIPOp{Op: "move", VIP: vip, Node: "n9"}, mgmt.ErrNotFound},
		{"left or leaving (not among the members)", &ring.State{Members: []ring.NodeID{2, 3}, Carriages: cs}, closeVIP, errNotServing},
		{"between rings", &ring.State{Carriages: cs}, closeVIP, errNotServing},
		{"no quorum", &ring.State{Members: []ring.NodeID{1}, NoQuorum: true, Carriages: cs}, closeVIP, errNotServing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n.state.Store(tt.state)
			err := n.VIP(tt.op)
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("VIP(%+v) = %v, want %v", tt.op, err, tt.want)
			}
		})
	}
	// Exactly the accepted operation reached the core.
	if len(fp.props) != 1 {
		t.Fatalf("%d proposals reached the core, want the one accepted", len(fp.props))
	}
	turn := h.OnToken(ring.TokenView{Self: 1, Members: []ring.NodeID{1, 2, 3}, Carriages: cs, Proposals: fp.props})
	got, _, _ := ringstate.Table(turn.Carriages)
	if r, _ := got.Lookup(vip); !r.Closed {
		t.Errorf("the accepted close of %s was not applied: %+v", vip, r)
	}
}
