package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/ringway/ringway/mgmt"
)

const apiToken = "0123456789abcdef0123"

// statusNode is a node's API without a flow table.
type statusNode struct{ st mgmt.Status }

func (n *statusNode) Status() mgmt.Status       { return n.st }
func (n *statusNode) VIP(op mgmt.VIPOp) error   { return errors.New("not in this test") }
func (n *statusNode) Node(op mgmt.NodeOp) error { return errors.New("not in this test") }

// flowNode answers flow queries the way a node should: the flows of its
// table with the address at either end, at most the limit, in table
// order (not by age).
type flowNode struct {
	statusNode
	off     bool // the filter is off
	flows   []mgmt.Flow
	mu      sync.Mutex
	queries []mgmt.FlowQuery
}

var _ mgmt.FlowBackend = (*flowNode)(nil)

func newFlowNode(node string, flows ...mgmt.Flow) *flowNode {
	return &flowNode{statusNode: statusNode{st: mgmt.Status{Node: node}}, flows: flows}
}

// asked returns the queries the node received.
func (n *flowNode) asked() []mgmt.FlowQuery {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.queries
}

func (n *flowNode) Flows(q mgmt.FlowQuery) (mgmt.Flows, error) {
	n.mu.Lock()
	n.queries = append(n.queries, q)
	n.mu.Unlock()
	fl := mgmt.Flows{Node: n.st.Node, Enabled: !n.off, Max: 1 << 20}
	if n.off {
		return fl, nil
	}
	fl.Count = int64(len(n.flows))
	for _, f := range n.flows {
		if q.Addr.IsValid() && f.Src.Addr() != q.Addr && f.Dst.Addr() != q.Addr {
			continue
		}
		if len(fl.Flows) == q.Limit {
			fl.Truncated = true
			break
		}
		fl.Flows = append(fl.Flows, f)
	}
	return fl, nil
}

// serveAPI runs a management server for b on a free port until the test
// ends, and returns the flags that point ringway at it.
func serveAPI(t *testing.T, b mgmt.Backend) []string {
	t.Helper()
	s, err := mgmt.NewServer(mgmt.Config{Listen: "127.0.0.1:0", Token: apiToken}, b)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("management server: %v", err)
		}
	})
	token := writeFile(t, filepath.Join(t.TempDir(), "admin.token"), apiToken+"\n", 0o600)
	return []string{"--node", s.Addr().String(), "--token-file", token}
}

var (
	cli1 = netip.MustParseAddr("203.0.113.10")
	cli2 = netip.MustParseAddr("203.0.113.11")
	srv  = netip.MustParseAddr("198.51.100.10")
	// labFlows are in table order, not by age.
	labFlows = []mgmt.Flow{
		{Proto: "udp", Src: netip.AddrPortFrom(cli1, 40000), Dst: netip.AddrPortFrom(srv, 7000),
			State: "assured", Rule: "clients-to-service", AgeS: 65.2, IdleS: 0.4, ExpiresS: 119.6,
			PacketsOrig: 10, PacketsReply: 9, BytesOrig: 840, BytesReply: 756},
		{Proto: "icmp", Src: netip.AddrPortFrom(srv, 0), Dst: netip.AddrPortFrom(cli2, 0), ICMPID: 4242,
			State: "icmp", Rule: "inside-out", AgeS: 1, IdleS: 1, ExpiresS: 29, PacketsOrig: 1, BytesOrig: 84},
		{Proto: "tcp", Src: netip.AddrPortFrom(cli1, 51000), Dst: netip.AddrPortFrom(srv, 443),
			State: "established", Rule: "default", AgeS: 3*86400 + 5*3600 + 7, IdleS: 12, ExpiresS: 431988,
			PacketsOrig: 1200, PacketsReply: 2400, BytesOrig: 96000, BytesReply: 3400000},
	}
)

func TestFlowsCommand(t *testing.T) {
	n := newFlowNode("n1", labFlows...)
	api := serveAPI(t, n)
	code, out, errOut := runCLI(t, append([]string{"flows"}, api...)...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := `node n1: 3 of 1048576 flows
PROTO  SRC                    DST                 STATE        RULE                AGE    IDLE  PKTS(orig/reply)  BYTES(orig/reply)
tcp    203.0.113.10:51000     198.51.100.10:443   established  default             3d05h  12s   1200/2400         96000/3400000
udp    203.0.113.10:40000     198.51.100.10:7000  assured      clients-to-service  1m05s  0s    10/9              840/756
icmp   198.51.100.10 id 4242  203.0.113.11        icmp         inside-out          1s     1s    1/0               84/0
`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("ringway flows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]mgmt.FlowQuery{{Limit: mgmt.DefaultFlowLimit}}, n.asked(), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("query sent (-want +got):\n%s", diff)
	}
}

// TestFlowsCommandSymmetric: with symmetric routing every flow names its
// handler and authoritative node, in two more columns.
func TestFlowsCommandSymmetric(t *testing.T) {
	fs := slices.Clone(labFlows[:2])
	fs[0].Handler, fs[0].Authoritative = "n1", "n3"
	fs[1].Handler, fs[1].Authoritative = "n1", "n1"
	api := serveAPI(t, newFlowNode("n1", fs...))
	code, out, errOut := runCLI(t, append([]string{"flows"}, api...)...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := `node n1: 2 of 1048576 flows
PROTO  SRC                    DST                 STATE    RULE                AGE    IDLE  PKTS(orig/reply)  BYTES(orig/reply)  HANDLER  AUTH
udp    203.0.113.10:40000     198.51.100.10:7000  assured  clients-to-service  1m05s  0s    10/9              840/756            n1       n3
icmp   198.51.100.10 id 4242  203.0.113.11        icmp     inside-out          1s     1s    1/0               84/0               n1       n1
`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("ringway flows (-want +got):\n%s", diff)
	}
}

// TestFlowsCommandAddr: --addr and --limit reach the node, and the header
// says how many matched and that the list was cut.
func TestFlowsCommandAddr(t *testing.T) {
	n := newFlowNode("n2", labFlows...)
	api := serveAPI(t, n)
	for _, tc := range []struct {
		args []string
		head string
		rows int
	}{
		{[]string{"--addr", "203.0.113.11"}, "node n2: 3 of 1048576 flows, 1 with 203.0.113.11\n", 1},
		{[]string{"--addr", "203.0.113.10", "--limit", "1"}, "node n2: 3 of 1048576 flows, 1 with 203.0.113.10 (truncated at 1; raise --limit)\n", 1},
		{[]string{"--limit", "2"}, "node n2: 3 of 1048576 flows (truncated at 2; narrow with --addr or raise --limit)\n", 2},
		{[]string{"--addr", "192.0.2.99"}, "node n2: 3 of 1048576 flows, 0 with 192.0.2.99\n", -1},
	} {
		code, out, errOut := runCLI(t, append(append([]string{"flows"}, api...), tc.args...)...)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if code != exitOK || !strings.HasPrefix(out, tc.head) || len(lines)-2 != tc.rows {
			t.Errorf("flows %v: exit %d, want the header %q and %d rows (-1: no table)\n%s%s", tc.args, code, tc.head, tc.rows, out, errOut)
		}
	}
	want := []mgmt.FlowQuery{{Addr: cli2, Limit: 1000}, {Addr: cli1, Limit: 1}, {Limit: 2}, {Addr: netip.MustParseAddr("192.0.2.99"), Limit: 1000}}
	if diff := cmp.Diff(want, n.asked(), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("queries sent (-want +got):\n%s", diff)
	}
}

func TestFlowsCommandJSON(t *testing.T) {
	api := serveAPI(t, newFlowNode("n1", labFlows...))
	code, out, errOut := runCLI(t, append([]string{"flows", "--json", "--addr", "198.51.100.10"}, api...)...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got mgmt.Flows
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	want := mgmt.Flows{Node: "n1", Enabled: true, Count: 3, Max: 1 << 20,
		Flows: []mgmt.Flow{labFlows[2], labFlows[0], labFlows[1]}}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{})); diff != "" {
		t.Errorf("--json (-want +got):\n%s", diff)
	}
}

// TestFlowsCommandFilterOff: a node without the filter says so; it is not
// a failure.
func TestFlowsCommandFilterOff(t *testing.T) {
	n := newFlowNode("n3")
	n.off = true
	api := serveAPI(t, n)
	code, out, errOut := runCLI(t, append([]string{"flows"}, api...)...)
	want := "node n3: the stateful filter is off (filter.enabled is false or absent in its config); it forwards statelessly and tracks no flows\n"
	if code != exitOK || out != want {
		t.Errorf("exit %d, stdout %q, want %q\nstderr: %s", code, out, want, errOut)
	}
}

// TestFlowsCommandErrors: bad flags are usage errors caught before any
// request; a node that cannot list flows fails with its reason.
func TestFlowsCommandErrors(t *testing.T) {
	n := newFlowNode("n1")
	api := serveAPI(t, n)
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--addr", "203.0.113"}, exitUsage, `flows --addr "203.0.113": write an IPv4 address, e.g. --addr 192.0.2.7`},
		{[]string{"--addr", "2001:db8::1"}, exitUsage, "write an IPv4 address"},
		{[]string{"--limit", "0"}, exitUsage, "flows --limit 0: write a whole number from 1 to 10000"},
		{[]string{"--limit", "10001"}, exitUsage, "from 1 to 10000"},
		{[]string{"203.0.113.10"}, exitUsage, "flows takes no arguments after its flags"},
	} {
		code, _, errOut := runCLI(t, append(append([]string{"flows"}, api...), tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.err) {
			t.Errorf("flows %v: exit %d, stderr %q; want %d mentioning %q", tc.args, code, errOut, tc.code, tc.err)
		}
	}
	if q := n.asked(); len(q) != 0 {
		t.Errorf("bad flags reached the node: %+v", q)
	}

	api = serveAPI(t, &statusNode{st: mgmt.Status{Node: "n1"}})
	code, _, errOut := runCLI(t, append([]string{"flows"}, api...)...)
	if code != exitFailure || !strings.Contains(errOut, "501 Not Implemented: this node cannot list flows") {
		t.Errorf("node without a flow table: exit %d, stderr %q", code, errOut)
	}
}

// TestStatusFilterLine: `ringway status` shows the filter in one line
// when the node reports it, nonzero drops only, most first.
func TestStatusFilterLine(t *testing.T) {
	st := mgmt.Status{Cluster: "lab", Node: "n1", Mode: "member", Members: []string{"n1"},
		Filter: &mgmt.FilterStatus{Enabled: true, Flows: 1234, MaxFlows: 1 << 20, NewFlows: 9999,
			Drops: map[string]uint64{"no_state": 2, "rule": 5, "spoofed_vip": 2, "table_full": 0}}}
	api := serveAPI(t, &statusNode{st: st})
	code, out, errOut := runCLI(t, append([]string{"status"}, api...)...)
	if code != exitOK || !strings.Contains(out, "\nfilter:  on, 1234 of 1048576 flows, drops: rule 5, no_state 2, spoofed_vip 2\n") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
	for _, tc := range []struct {
		f    mgmt.FilterStatus
		want string
	}{
		{mgmt.FilterStatus{Enabled: true, Flows: 0, MaxFlows: 1000}, "on, 0 of 1000 flows, drops: none"},
		{mgmt.FilterStatus{}, "off (forwarding statelessly; filter.enabled is false or absent)"},
	} {
		if got := filterLine(tc.f); got != tc.want {
			t.Errorf("filterLine(%+v) = %q, want %q", tc.f, got, tc.want)
		}
	}
}

func TestSeconds(t *testing.T) {
	for _, tc := range []struct {
		s    float64
		want string
	}{
		{0, "0s"}, {0.9, "0s"}, {-1, "0s"}, {59.9, "59s"}, {60, "1m00s"}, {3599, "59m59s"},
		{3600, "1h00m"}, {86399, "23h59m"}, {86400, "1d00h"}, {5 * 86400, "5d00h"},
	} {
		if got := seconds(tc.s); got != tc.want {
			t.Errorf("seconds(%v) = %q, want %q", tc.s, got, tc.want)
		}
	}
}

// TestStatusTunnelLine: with symmetric routing, `ringway status` adds the
// tunnel's line under the filter's, with the held first packets when any.
func TestStatusTunnelLine(t *testing.T) {
	st := mgmt.Status{Cluster: "lab", Node: "n2", Mode: "member", Members: []string{"n1", "n2"},
		Filter: &mgmt.FilterStatus{Enabled: true, Flows: 3, MaxFlows: 1000, Tunnel: &mgmt.TunnelStatus{
			Redirects: 40, Sent: 40, Received: 7, Registry: 2, HintsHeld: 1,
			Defer: mgmt.DeferStatus{Deferred: 3, ReleasedAck: 2, ReleasedTimeout: 1},
			Drops: map[string]uint64{"replayed": 2}}}}
	api := serveAPI(t, &statusNode{st: st})
	code, out, errOut := runCLI(t, append([]string{"status"}, api...)...)
	want := "\ntunnel:  redirected 40, packets sent 40 received 7, registry 2 flows, hints 1; first packets held 3 (released by ack 2, by timeout 1, not held: full 0); 2 dropped (see --json)\n"
	if code != exitOK || !strings.Contains(out, want) {
		t.Errorf("exit %d, want a line %q in:\n%s%s", code, want, out, errOut)
	}
	if got := tunnelLine(mgmt.TunnelStatus{}); got != "redirected 0, packets sent 0 received 0, registry 0 flows, hints 0" {
		t.Errorf("an idle tunnel's line: %q", got)
	}
}
