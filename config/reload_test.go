package config

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustParse(t *testing.T, name, yaml string) *Config {
	t.Helper()
	c, err := Parse(name, []byte(yaml))
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return c
}

// TestDiff: each key lands in the scope docs/operating.md promises; a
// file that changes nothing has no changes.
func TestDiff(t *testing.T) {
	old := mustParse(t, "old.yaml", base)
	for _, tc := range []struct {
		name     string
		from, to string // a replacement in base
		want     []Change
	}{
		{"nothing", "", "", nil},
		{"vip added", "203.0.113.91-203.0.113.94", "203.0.113.91-203.0.113.95",
			[]Change{{Key: "subnets[0].vips", Scope: Runtime}}},
		{"preferred moved", "preferred: n1", "preferred: n2", []Change{{Key: "vips", Scope: Runtime}}},
		{"balancing", "quorum: availability", "quorum: availability\nbalancing: {threshold: 0.5}", []Change{{Key: "balancing", Scope: Runtime}}},
		{"own id", "node:\n  id: n1", "node:\n  id: n2", []Change{{Key: "node.id", Scope: RestartNode}}},
		{"own address", "[203.0.113.1, 198.51.100.1]", "[203.0.113.11, 198.51.100.1]", []Change{{Key: "nodes[0]", Scope: RestartNode}}},
		{"other address", "[203.0.113.2, 198.51.100.2]", "[203.0.113.12, 198.51.100.2]", []Change{{Key: "nodes", Scope: RestartCluster}}},
		{"appended node", "    addresses: [203.0.113.3, 198.51.100.3]", "    addresses: [203.0.113.3, 198.51.100.3]\n  - id: n4\n    addresses: [203.0.113.4, 198.51.100.4]",
			[]Change{{Key: "nodes", Scope: Runtime}}},
		{"node removed", "  - id: n3\n    addresses: [203.0.113.3, 198.51.100.3]\n", "", []Change{{Key: "nodes", Scope: RestartCluster}}},
		{"interface", "interface: ext0", "interface: eth0", []Change{{Key: "subnets[0]", Scope: RestartNode}}},
		{"key", "key_file: cluster.key", "key_file: other.key", []Change{{Key: "cluster.key_file", Scope: RestartCluster}}},
		{"ring timer", "quorum: availability", "quorum: availability\nring: {hop_interval: 3ms}", []Change{{Key: "ring", Scope: Runtime}}},
		{"ring tick", "quorum: availability", "quorum: availability\nring: {tick: 1ms}", []Change{{Key: "ring.tick", Scope: RestartCluster}}},
		{"quorum", "quorum: availability", "quorum: majority", []Change{{Key: "quorum", Scope: RestartCluster}}},
		{"filter rules", "quorum: availability", "quorum: availability\nfilter: {rules: [{name: r, from: [ext], to: [any], action: accept}]}", []Change{{Key: "filter.rules", Scope: Runtime}}},
		{"filter switch", "quorum: availability", "quorum: availability\nfilter: {enabled: true}", []Change{{Key: "filter", Scope: RestartNode}}},
		{"ping targets", "quorum: availability", "quorum: availability\nmonitors: {ping: {targets: [192.0.2.9]}}", []Change{{Key: "monitors.ping", Scope: Runtime}}},
		{"ping on", "quorum: availability", "quorum: availability\nmonitors: {ping: {enabled: true, targets: [192.0.2.9]}}", []Change{{Key: "monitors.ping", Scope: Runtime}}},
		{"app on", "quorum: availability", "quorum: availability\nmonitors: {application: {enabled: true, command: 'true'}}", []Change{{Key: "monitors.application", Scope: Runtime}}},
		{"app user", "quorum: availability", "quorum: availability\nmonitors: {application: {command: 'true', user: nobody}}", []Change{{Key: "monitors.application.user", Scope: RestartNode}}},
		{"nic off", "quorum: availability", "quorum: availability\nmonitors: {nic: {enabled: false}}", []Change{{Key: "monitors.nic", Scope: Runtime}}},
		{"garp", "quorum: availability", "quorum: availability\nrouter: {garp: {refresh: 45s}}", []Change{{Key: "router.garp", Scope: Runtime}}},
		{"arp cache", "quorum: availability", "quorum: availability\nrouter: {arp_cache: {ttl: 10s}}", []Change{{Key: "router.arp_cache", Scope: Runtime}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := mustParse(t, "new.yaml", strings.ReplaceAll(base, tc.from, tc.to))
			got := Diff(old, next)
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b Change) bool { return a.Key == b.Key && a.Scope == b.Scope })); diff != "" {
				t.Errorf("Diff (-want +got):\n%s", diff)
			}
			for _, c := range Refusals(got) {
				if !strings.Contains(c.Why, "restart") {
					t.Errorf("%s: refusal %q does not say to restart", c.Key, c.Why)
				}
			}
		})
	}
}

// TestShared: files that differ only in per-node keys share their bytes
// (and hash); a runtime key changes them.
func TestShared(t *testing.T) {
	n1 := mustParse(t, "/etc/a/ringway.yaml", base)
	n2 := mustParse(t, "/etc/b/ringway.yaml", strings.Replace(base, "id: n1\nnodes", "id: n2\nnodes", 1)+"management: {listen: 127.0.0.1:9441, token_file: t}\n")
	s1, err := n1.Shared()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := n2.Shared()
	if err != nil {
		t.Fatal(err)
	}
	if Hash(s1) != Hash(s2) {
		t.Fatalf("two nodes' files differ only in node keys but not in shared bytes:\n%s\n---\n%s", s1, s2)
	}
	n3 := mustParse(t, "/etc/c/ringway.yaml", strings.Replace(base, "203.0.113.94]", "203.0.113.95]", 1))
	s3, _ := n3.Shared()
	if Hash(s1) == Hash(s3) {
		t.Fatal("a VIP added does not change the shared bytes")
	}
}

// TestWithShared: a node applies another node's shared part: runtime keys
// from the epoch, its own keys kept; an epoch that changes what cannot
// change is refused whole.
func TestWithShared(t *testing.T) {
	n2 := mustParse(t, "/etc/b/ringway.yaml", strings.Replace(base, "id: n1\nnodes", "id: n2\nnodes", 1))
	otherText := strings.Replace(base, "preferred: n1", "preferred: n3", 2) +
		"balancing: {threshold: 0.5}\nrouter: {arp_cache: {ttl: 10s, queue: 5}, garp: {refresh: 45s}}\n" +
		"ring: {hop_interval: 3ms}\nmonitors: {ping: {enabled: true, targets: [192.0.2.9]}, nic: {enabled: false}}\n" +
		"filter: {rules: [{name: r, from: [ext], to: [any], action: accept}]}\n"
	other := mustParse(t, "/etc/a/ringway.yaml", otherText)
	other.Subnets[0].VIPs = append(other.Subnets[0].VIPs, mustAddr(t, "203.0.113.95"))
	shared, err := other.Shared()
	if err != nil {
		t.Fatal(err)
	}
	got, cs, err := n2.WithShared(shared)
	if err != nil {
		t.Fatal(err)
	}
	if got.Node.ID != "n2" || got.Cluster.KeyFile != n2.Cluster.KeyFile {
		t.Errorf("node keys not kept: id %q key %q", got.Node.ID, got.Cluster.KeyFile)
	}
	if got.VIPs[0].Preferred != "n3" || got.Balancing.Threshold != 0.5 || len(got.Subnets[0].VIPs) != 5 {
		t.Errorf("runtime keys not taken: %+v %+v %v", got.VIPs[0], got.Balancing, got.Subnets[0].VIPs)
	}
	if Keys(cs) != "subnets[0].vips, vips, ring, monitors.nic, monitors.ping, balancing, router.garp, router.arp_cache, filter.rules" {
		t.Errorf("changes %q", Keys(cs))
	}
	// Every key the epoch changed is taken: the result is the other file
	// with n2's own keys.
	want := mustParse(t, "/etc/b/ringway.yaml", strings.Replace(otherText, "id: n1\nnodes", "id: n2\nnodes", 1))
	want.Subnets[0].VIPs = other.Subnets[0].VIPs
	if d := Diff(want, got); len(d) != 0 {
		t.Errorf("WithShared left keys as they were: %v", d)
	}

	ring := mustParse(t, "/etc/a/ringway.yaml", base+"ring: {port: 7950}\n")
	shared, _ = ring.Shared()
	got, cs, err = n2.WithShared(shared)
	if got != nil || err != nil || Keys(cs) != "ring.port" {
		t.Errorf("an epoch with a new ring port: got %v, refusals %q, err %v; want refused on ring.port", got != nil, Keys(cs), err)
	}
	if _, _, err := n2.WithShared([]byte("cluster: [")); err == nil {
		t.Error("garbage epoch accepted")
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// ring.realtime_priority is this node's: a reload that changes it is
// refused until a restart, and another node's value neither rides the
// epoch nor keeps this node from applying it.
func TestReloadRealtimePriority(t *testing.T) {
	old := mustParse(t, "old.yaml", base)
	next := mustParse(t, "new.yaml", strings.ReplaceAll(base, "quorum: availability", "quorum: availability\nring: {realtime_priority: 20}"))
	if r := Refusals(Diff(old, next)); len(r) != 1 || r[0].Key != "ring.realtime_priority" || r[0].Scope != RestartNode {
		t.Fatalf("refusals %v, want ring.realtime_priority (restart this node)", r)
	}
	shared, err := next.Shared()
	if err != nil {
		t.Fatal(err)
	}
	got, changes, err := old.WithShared(shared)
	if err != nil || len(changes) != 0 {
		t.Fatalf("another node's priority in the epoch: changes %v, err %v; want it applied with no change", changes, err)
	}
	if got.Ring.RealtimePriority != old.Ring.RealtimePriority {
		t.Errorf("applying the epoch set this node's priority to %d, want its own %d", got.Ring.RealtimePriority, old.Ring.RealtimePriority)
	}
}
