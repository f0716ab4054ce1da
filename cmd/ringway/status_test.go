package main

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/mgmt"
)

func TestPrintStatus(t *testing.T) {
	st := mgmt.Status{
		Cluster: "lab", Node: "n2", Mode: "member", RingID: 7, Seq: 42,
		Members: []string{"n1", "n2", "n3"}, Holder: "n3", Rotation: 12,
		VIPs: []mgmt.VIP{
			{VIP: netip.MustParseAddr("203.0.113.91"), Subnet: "ext", Owner: "n1", Preferred: "n1", Persistence: "preferred", Group: "gw1", Rate: 1_250_000},
			{VIP: netip.MustParseAddr("203.0.113.92"), Subnet: "ext", Persistence: "none", Closed: true},
		},
		NodeStates: []mgmt.NodeState{{ID: "n1", State: "member", Load: 1_250_000, VIPs: 1}, {ID: "n2", State: "member"}},
		Links:      []mgmt.LinkLoad{{Name: "ext0", Rx: 2500, Tx: 120}},
		Balancing:  true,
		Moves:      []mgmt.VIPMove{{Time: time.Date(2026, 12, 4, 10, 0, 0, 0, time.Local), VIP: netip.MustParseAddr("203.0.113.91"), From: "n3", To: "n1", Reason: "preference"}},
	}
	var b strings.Builder
	printStatus(&b, st)
	want := `cluster lab, seen from n2 (member)
ring:    7, seq 42, members n1 n2 n3
token:   at n3 (as far as n2 knows), rotation 12.0 ms
switch:  L.BAL on, AUTO off
load:    n1 1.2 MB/s, n2 0 B/s
nics:    ext0 in 2.5 kB/s out 120 B/s (on n2)

VIP           SUBNET  OWNER   PREFERRED  PERSISTENCE  GROUP  RATE
203.0.113.91  ext     n1      n1         preferred    gw1    1.2 MB/s
203.0.113.92  ext     CLOSED  -          none         -      0 B/s

VIP moves (last 1 of 1 n2 remembers, oldest first):
  10:00:00.000  203.0.113.91    n3 -> n1 (preference)
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("status output (-want +got):\n%s", diff)
	}

	b.Reset()
	printStatus(&b, mgmt.Status{Cluster: "lab", Node: "n1", Mode: "member", Members: []string{"n1"}, Alone: true, NoQuorum: true})
	if got := b.String(); !strings.Contains(got, "members n1, alone, NO QUORUM: serving nothing") || !strings.Contains(got, "rotation not measured yet") {
		t.Errorf("a lone node without quorum:\n%s", got)
	}
	b.Reset()
	printStatus(&b, mgmt.Status{Cluster: "lab", Node: "n1", Mode: "member", Members: []string{"n1", "n2"},
		Closed: []string{"n2"}, Unhealthy: []string{"n1"}, LinksDown: []string{"ext0"}})
	if got := b.String(); !strings.Contains(got, "out:     closed n2; unhealthy n1 (they answer no VIP)\n") || !strings.Contains(got, "links:   ext0 down on n1\n") {
		t.Errorf("closed and unhealthy nodes:\n%s", got)
	}
	b.Reset()
	printStatus(&b, mgmt.Status{Cluster: "lab", Node: "n1", Mode: "starting"})
	if got := b.String(); !strings.Contains(got, "ring:    none yet") || strings.Contains(got, "token:") || !strings.Contains(got, "VIPs:    no table yet") {
		t.Errorf("a node between rings:\n%s", got)
	}
}

// status shows the last membership changes with their causes.
func TestPrintStatusEvents(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.Local)
	st := mgmt.Status{Cluster: "lab", Node: "n2", Mode: "member", Members: []string{"n1", "n2"}}
	for i := range 7 {
		st.Events = append(st.Events, mgmt.MembershipEvent{Time: at.Add(time.Duration(i) * time.Second), Kind: "joined",
			Cause: fmt.Sprintf("n1 added n%d at its request", i+3), Members: []string{"n1", "n2"}})
	}
	st.Events = append(st.Events, mgmt.MembershipEvent{Time: at.Add(9 * time.Second), Kind: "dropped",
		Cause: "n1 dropped n3: hop unacknowledged after 3 tries on paths ext,int, last RTT <2ms", Members: []string{"n1", "n2"}})
	var b strings.Builder
	printStatus(&b, st)
	want := `
membership changes (last 5 of 8 n2 remembers, oldest first):
  10:00:03.000  joined      n1 added n6 at its request; members n1 n2
  10:00:04.000  joined      n1 added n7 at its request; members n1 n2
  10:00:05.000  joined      n1 added n8 at its request; members n1 n2
  10:00:06.000  joined      n1 added n9 at its request; members n1 n2
  10:00:09.000  dropped     n1 dropped n3: hop unacknowledged after 3 tries on paths ext,int, last RTT <2ms; members n1 n2
`
	got := b.String()
	if i := strings.Index(got, "\nmembership changes"); i < 0 {
		t.Fatalf("no membership changes in:\n%s", got)
	} else if diff := cmp.Diff(want, got[i:]); diff != "" {
		t.Errorf("membership changes (-want +got):\n%s", diff)
	}
}

func TestPrintNodes(t *testing.T) {
	st := mgmt.Status{
		Cluster: "lab", Node: "n2", Mode: "member", Nodes: []string{"n1", "n2", "n3"},
		Members: []string{"n1", "n2"}, Holder: "n1",
		VIPs: []mgmt.VIP{
			{VIP: netip.MustParseAddr("203.0.113.91"), Owner: "n1", Preferred: "n3"},
			{VIP: netip.MustParseAddr("203.0.113.92"), Owner: "n2"},
			{VIP: netip.MustParseAddr("203.0.113.93"), Owner: "n2"},
			{VIP: netip.MustParseAddr("203.0.113.94"), Closed: true, Preferred: "n3"},
		},
	}
	var b strings.Builder
	printNodes(&b, st)
	want := `cluster lab, seen from n2 (member)
NODE  STATE        TOKEN   OWNS    PREFERRED BY
n1    member       holder  1 VIPs  0 VIPs
n2    member       -       2 VIPs  0 VIPs
n3    not in ring  -       0 VIPs  2 VIPs
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("node list (-want +got):\n%s", diff)
	}
	st.Members = nil // the answering node is between rings
	if rows := nodeRows(st); rows[0].State != "unknown" {
		t.Errorf("between rings: %+v, want state unknown", rows[0])
	}
}

// TestNodeAPIAddr: --node takes a node id when every node's API listens on
// a wildcard address; otherwise the error says what to give instead.
func TestNodeAPIAddr(t *testing.T) {
	cfg := &config.Config{
		// Addresses in any order: the first subnet's is the one used.
		Subnets: []config.Subnet{{Prefix: netip.MustParsePrefix("198.51.100.0/24")}, {Prefix: netip.MustParsePrefix("203.0.113.0/24")}},
		Nodes: []config.NodeEntry{
			{ID: "n1", Addresses: []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.1")}},
			{ID: "n2", Addresses: []netip.Addr{netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("198.51.100.2")}},
		},
	}
	for _, tc := range []struct {
		listen, id, want, err string
	}{
		{"0.0.0.0:7080", "n2", "198.51.100.2:7080", ""},
		{":7080", "n1", "198.51.100.1:7080", ""},
		{"[::]:7080", "n1", "198.51.100.1:7080", ""},
		{"", "n1", "", ""},
		{"127.0.0.1:7080", "n2", "", "give it as --node HOST:PORT"},
		{"0.0.0.0:7080", "n9", "", "nor a node id of the config (n1, n2)"},
	} {
		cfg.Management.Listen = tc.listen
		got, err := nodeAPIAddr(cfg, tc.id)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("listen %q, --node %s: error %v, want one saying %q", tc.listen, tc.id, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("listen %q, --node %s = %q, %v; want %q", tc.listen, tc.id, got, err, tc.want)
		}
	}
}
