package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// base is a valid config shaped like the reference lab. Cases edit it with
// string replacements and mark the lines where they expect an error with
// "#!x" comments.
const base = `cluster:
  name: lab
  key_file: cluster.key
node:
  id: n1
nodes:
  - id: n1
    addresses: [203.0.113.1, 198.51.100.1]
  - id: n2
    addresses: [203.0.113.2, 198.51.100.2]
  - id: n3
    addresses: [203.0.113.3, 198.51.100.3]
subnets:
  - name: ext
    interface: ext0
    prefix: 203.0.113.0/24
    vips: [203.0.113.91-203.0.113.94]
  - name: int
    interface: int0
    prefix: 198.51.100.0/24
    vips: [198.51.100.91-198.51.100.94]
routes:
  - to: 0.0.0.0/0
    via: 203.0.113.254
vips:
  - vip: 203.0.113.91
    preferred: n1
    persistence: preferred
    group: gw1
  - vip: 198.51.100.91
    preferred: n1
    persistence: preferred
    group: gw1
quorum: availability
`

var cmpNet = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

// edit applies old→new replacements to base; each old must be present.
func edit(t *testing.T, pairs ...string) string {
	t.Helper()
	s := base
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("edit: %q not in base", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

var markRE = regexp.MustCompile(`#!(\w+)`)

// marks maps each "#!x" marker to its 1-based line.
func marks(s string) map[string]int {
	m := map[string]int{}
	for i, l := range strings.Split(s, "\n") {
		for _, sm := range markRE.FindAllStringSubmatch(l, -1) {
			m[sm[1]] = i + 1
		}
	}
	return m
}

type want struct {
	mark string // line marker; "" = line 0 (the file as a whole)
	frag string // must appear in the message
}

func TestParseBaseIsValid(t *testing.T) {
	c, err := Parse("/etc/ringway/ringway.yaml", []byte(base))
	if err != nil {
		t.Fatalf("base config: %v", err)
	}
	if got, want := c.Summary(), "cluster lab, node n1 (1 of 3), 2 subnets, 8 VIPs, 1 route"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	if got, want := c.Cluster.KeyFile, "/etc/ringway/cluster.key"; got != want {
		t.Errorf("relative key_file resolved to %q, want %q", got, want)
	}
}

func TestBadConfigs(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []want
	}{
		{"unknown key with suggestion", edit(t, "  key_file: cluster.key", "  key_fil: cluster.key #!a"),
			[]want{{"a", `unknown key "key_fil" in cluster; did you mean "key_file"?`}}},
		{"unknown top-level key", edit(t, "quorum: availability", "quorum: availability\nfrobnicate: 1 #!a"),
			[]want{{"a", `unknown key "frobnicate" at the top level; known keys are balancing, cluster,`}}},
		{"unknown ring key", base + "ring:\n  hop_intervall: 5ms #!a\n",
			[]want{{"a", `unknown key "hop_intervall" in ring; did you mean "hop_interval"?`}}},
		{"removed key disable_offloads", base + "router:\n  disable_offloads: true #!a\n",
			[]want{{"a", `unknown key "disable_offloads" in router; known keys are arp_cache, garp`}}},
		{"duplicate key", edit(t, "  name: lab\n", "  name: lab\n  name: lab2 #!a\n"),
			[]want{{"a", `key "name" appears twice (first on line 2); keep one`}}},
		{"list where string expected", edit(t, "  id: n1\nnodes:", "  id: [n1] #!a\nnodes:"),
			[]want{{"a", "node.id: expected a string, found a list"}}},
		{"number where string expected", edit(t, "  name: lab", "  name: 2024 #!a"),
			[]want{{"a", `cluster.name: expected a string, found int; put it in quotes: "2024"`}}},
		{"scalar where section expected", edit(t, "quorum: availability", "quorum: availability\nring: fast #!a"),
			[]want{{"a", `ring: expected a mapping with keys port, tick, hop_interval`}}},
		{"empty scalar", edit(t, "  key_file: cluster.key", "  key_file: #!a"),
			[]want{{"a", "cluster.key_file has no value; write a string, or remove the key"}}},
		{"node.id not in map", edit(t, "  id: n1\nnodes:", "  id: n9 #!a\nnodes:"),
			[]want{{"a", `node.id "n9" is not in the node map; write one of n1, n2, n3`}}},
		{"node.id missing", strings.Replace(edit(t, "node:\n  id: n1\n", ""), "cluster:", "cluster: #!a", 1),
			[]want{{"a", "node.id is missing; write the id of this node from the node map, e.g. node: {id: n1}"}}},
		{"duplicate node id", edit(t, "  - id: n3", "  - id: n2 #!a"),
			[]want{{"a", `node id "n2" is used twice (also on line 9)`}}},
		{"duplicate primary address", edit(t, "[203.0.113.3, 198.51.100.3]", "[203.0.113.2, 198.51.100.3] #!a"),
			[]want{{"a", "address 203.0.113.2 of node n3 is also at node n2 (line 10); primary addresses must be unique"}}},
		{"node missing subnet", edit(t, "[203.0.113.2, 198.51.100.2]", "[203.0.113.2] #!a"),
			[]want{{"a", "node n2 has no address in subnet int (198.51.100.0/24); add its primary address there"}}},
		{"two addresses in one subnet", edit(t, "[203.0.113.2, 198.51.100.2]", "[203.0.113.2, 198.51.100.2, 203.0.113.20] #!a"),
			[]want{{"a", "node n2 has two addresses in subnet ext (203.0.113.2 and 203.0.113.20); a node has exactly one primary address per subnet"}}},
		{"address in no subnet", edit(t, "[203.0.113.2, 198.51.100.2]", "[203.0.113.2, 198.51.100.2, 192.0.2.2] #!a"),
			[]want{{"a", "address 192.0.2.2 of node n2 is in no subnet; add a subnet whose prefix holds it, or remove it"}}},
		{"address is network address", edit(t, "[203.0.113.2, 198.51.100.2]", "[203.0.113.0, 198.51.100.2] #!a"),
			[]want{{"a", "address 203.0.113.0 of node n2 is the network address of subnet ext"}}},
		{"bad address", edit(t, "[203.0.113.2, 198.51.100.2]", "[203.0.113.2, 198.51.100.300] #!a"),
			[]want{{"a", `nodes.addresses: "198.51.100.300" is not an IPv4 address; write a dotted quad such as 192.0.2.1`}}},
		{"IPv6 address", edit(t, "[203.0.113.2, 198.51.100.2]", "[203.0.113.2, 198.51.100.2, '2001:db8::1'] #!a"),
			[]want{{"a", `"2001:db8::1" is not IPv4; ringway routes IPv4 only`}}},
		{"VIP outside prefix", edit(t, "vips: [203.0.113.91-203.0.113.94]", "vips: [203.0.113.91-203.0.113.94, 192.0.2.7] #!a"),
			[]want{{"a", "VIP 192.0.2.7 is outside subnet ext (203.0.113.0/24); move it to the subnet whose prefix holds it"}}},
		{"range crossing prefix", edit(t, "vips: [203.0.113.91-203.0.113.94]", "vips: [203.0.112.250-203.0.113.94] #!a"),
			[]want{{"a", "VIP range 203.0.112.250-203.0.113.94 leaves subnet ext (203.0.113.0/24); keep both ends inside the prefix"}}},
		{"reversed range", edit(t, "vips: [203.0.113.91-203.0.113.94]", "vips: [203.0.113.94-203.0.113.91] #!a"),
			[]want{{"a", `subnets.vips entry 1: range "203.0.113.94-203.0.113.91" runs backwards; write 203.0.113.91-203.0.113.94`}}},
		{"range too large", edit(t, "vips: [203.0.113.91-203.0.113.94]", "vips: [10.0.0.0-10.1.0.0] #!a"),
			[]want{{"a", `range "10.0.0.0-10.1.0.0" holds 65537 addresses, more than 65536; split it or shorten it`}}},
		{"VIP is broadcast", edit(t, "vips: [203.0.113.91-203.0.113.94]", "vips: [203.0.113.91-203.0.113.94, 203.0.113.255] #!a"),
			[]want{{"a", "VIP 203.0.113.255 is the broadcast address of subnet ext; a VIP must be a host address"}}},
		{"range includes network address", edit(t, "vips: [198.51.100.91-198.51.100.94]", "vips: [198.51.100.0-198.51.100.1] #!a", "  - vip: 198.51.100.91", "  - vip: 198.51.100.91 #!b"),
			[]want{{"a", "VIP range 198.51.100.0-198.51.100.1 includes 198.51.100.0 (the network address)"},
				{"a", "VIP range 198.51.100.0-198.51.100.1 includes the primary address 198.51.100.1 (node n1)"}, {"b", "VIP 198.51.100.91 is in no subnet's vips"}}},
		{"VIP is a primary address", edit(t, "vips: [203.0.113.91-203.0.113.94]", "vips: [203.0.113.91-203.0.113.94, 203.0.113.3] #!a"),
			[]want{{"a", "VIP 203.0.113.3 is the primary address of node n3; a VIP must not be any node's primary address"}}},
		{"VIP repeated by overlapping ranges", edit(t, "vips: [203.0.113.91-203.0.113.94]", "vips: [203.0.113.91-203.0.113.94, 203.0.113.93-203.0.113.99] #!a"),
			[]want{{"a", "VIP range 203.0.113.93-203.0.113.99 repeats 203.0.113.93 (also in subnet ext, line 17), 203.0.113.94"}}},
		{"VIP listed twice", edit(t, "vips: [203.0.113.91-203.0.113.94]", "vips: [203.0.113.91-203.0.113.94, 203.0.113.92] #!a"),
			[]want{{"a", "VIP 203.0.113.92 is listed twice (also in subnet ext, line 17); list every VIP once"}}},
		{"vips not a list", edit(t, "vips: [203.0.113.91-203.0.113.94]", "vips: 203.0.113.91 #!a"),
			[]want{{"a", `subnets.vips: expected a list of addresses and ranges`}}},
		{"prefix with host bits", edit(t, "prefix: 198.51.100.0/24", "prefix: 198.51.100.5/24 #!a"),
			[]want{{"a", `subnets.prefix: "198.51.100.5/24" has host bits set; write 198.51.100.0/24`}}},
		{"prefix without length", edit(t, "prefix: 198.51.100.0/24", "prefix: 198.51.100.0 #!a"),
			[]want{{"a", `"198.51.100.0" has no prefix length; write it as 198.51.100.0/24`}}},
		{"overlapping subnets", edit(t, "prefix: 198.51.100.0/24", "prefix: 203.0.112.0/23 #!a"),
			[]want{{"a", "prefix 203.0.112.0/23 overlaps 203.0.113.0/24 of subnet ext (line 16); subnets must be disjoint"},
				{"v", "VIP range 198.51.100.91-198.51.100.94 leaves subnet int (203.0.112.0/23)"}}},
		{"interface too long", edit(t, "interface: int0", "interface: internal-network0 #!a"),
			[]want{{"a", `interface "internal-network0" is 17 bytes; Linux interface names have at most 15`}}},
		{"interface with slash", edit(t, "interface: int0", "interface: int/0 #!a"),
			[]want{{"a", `interface "int/0" contains a character Linux does not allow`}}},
		{"interface used twice", edit(t, "interface: int0", "interface: ext0 #!a"),
			[]want{{"a", `interface "ext0" serves two subnets (also on line 15); each subnet needs its own interface`}}},
		{"interface missing", strings.Replace(edit(t, "    interface: int0\n", ""), "  - name: int", "  - name: int #!a", 1),
			[]want{{"a", "subnet 2 has no interface; add interface:"}}},
		{"route via outside", edit(t, "via: 203.0.113.254", "via: 192.0.2.1 #!a"),
			[]want{{"a", "next hop 192.0.2.1 is in no connected subnet; use a router address inside one of 203.0.113.0/24, 198.51.100.0/24"}}},
		{"route via a VIP", edit(t, "via: 203.0.113.254", "via: 203.0.113.92 #!a"),
			[]want{{"a", "next hop 203.0.113.92 is one of our own VIPs"}}},
		{"route without via", strings.Replace(edit(t, "    via: 203.0.113.254\n", ""), "  - to: 0.0.0.0/0", "  - to: 0.0.0.0/0 #!a", 1),
			[]want{{"a", "route 1 has no next hop; add via:"}}},
		{"policy for unknown VIP", edit(t, "  - vip: 203.0.113.91", "  - vip: 203.0.113.99 #!a"),
			[]want{{"a", "VIP 203.0.113.99 is in no subnet's vips; add it to the vips of its subnet first"}}},
		{"preferred node unknown", edit(t, "    preferred: n1\n    persistence: preferred\n    group: gw1\n  - vip: 198", "    preferred: n7 #!a\n    persistence: preferred\n    group: gw1\n  - vip: 198"),
			[]want{{"a", `preferred node "n7" is not in the node map; write one of n1, n2, n3`}}},
		{"bad persistence", edit(t, "    persistence: preferred\n    group: gw1\n  - vip: 198", "    persistence: sticky #!a\n    group: gw1\n  - vip: 198"),
			[]want{{"a", `persistence "sticky" is not known; write none, current or preferred`}}},
		{"preferred persistence without node", edit(t, "    preferred: n1\n    persistence: preferred\n    group: gw1\n  - vip: 198", "    persistence: preferred #!a\n    group: gw1\n  - vip: 198"),
			[]want{{"a", "persistence preferred needs a preferred node; add preferred: <node id>, or use persistence current"}}},
		{"group with two VIPs of one subnet", edit(t, "  - vip: 198.51.100.91", "  - vip: 203.0.113.92"),
			[]want{{"grp", `group "gw1" already has VIP 203.0.113.91 of subnet ext (line 26); a group holds at most one VIP per subnet`}}},
		{"group members disagree", edit(t, "  - vip: 198.51.100.91\n    preferred: n1\n    persistence: preferred\n    group: gw1", "  - vip: 198.51.100.91\n    preferred: n2\n    persistence: preferred\n    group: gw1 #!a"),
			[]want{{"a", `group "gw1": VIP 198.51.100.91 has preferred "n2" and persistence preferred, but 203.0.113.91 (line 26) has preferred "n1" and persistence preferred; give every VIP of a group the same`}}},
		{"ring port out of range", base + "ring:\n  port: 70000 #!a\n",
			[]want{{"a", "ring.port is 70000; use a UDP port from 1 to 65535"}}},
		{"policy twice", edit(t, "quorum: availability", "  - vip: 203.0.113.91 #!a\nquorum: availability"),
			[]want{{"a", "VIP 203.0.113.91 has a second policy (first on line 26); merge them into one entry"}}},
		{"bad quorum", edit(t, "quorum: availability", "quorum: most #!a"),
			[]want{{"a", `quorum "most" is not known; write availability or majority`}}},
		{"duration without unit", base + "ring:\n  tick: 2 #!a\n",
			[]want{{"a", "ring.tick: 2 has no unit; write it with one, such as 2ms or 2s"}}},
		{"not a duration", base + "monitors:\n  application:\n    interval: 1 second #!a\n",
			[]want{{"a", `monitors.application.interval: "1 second" is not a duration; write a number with a unit`}}},
		{"negative duration", base + "ring:\n  hop_interval: -5ms #!a\n",
			[]want{{"a", "ring.hop_interval is -5ms; it must be positive"}}},
		{"hop shorter than tick", base + "ring:\n  tick: 3ms\n  hop_interval: 2ms #!a\n",
			[]want{{"a", "ring.hop_interval is 2ms, shorter than ring.tick (3ms); make it at least one tick"}}},
		{"token_loss too short", base + "ring:\n  token_loss: 40ms #!a\n",
			[]want{{"a", "ring.token_loss 40ms is too short: with 3 nodes a healthy token is away from a node for up to 32ms, and a failed hop adds the ack budget 28ms (ack_timeout × (2^(ack_retries+1) − 1)); write at least 60ms, or 0 for automatic (64ms)"}}},
		{"ack budget of one tick", base + "ring:\n  ack_timeout: 2ms #!a\n  ack_retries: 0\n",
			[]want{{"a", "ring.ack_timeout 2ms with ring.ack_retries 0 gives an ack budget of 1 tick (2ms): a hop would fail on an ordinary round trip that crosses a tick; raise ack_timeout or ack_retries"}}},
		{"negative min_rotation", base + "ring:\n  min_rotation: -1ms #!a\n",
			[]want{{"a", "ring.min_rotation is -1ms; write 0 to turn it off or a positive duration (default 40ms)"}}},
		{"ack_retries out of range", base + "ring:\n  ack_retries: 11 #!a\n",
			[]want{{"a", "ring.ack_retries is 11; use 0 to 10"}}},
		{"ack_retries not a number", base + "ring:\n  ack_retries: two #!a\n",
			[]want{{"a", `ring.ack_retries: "two" is not a whole number`}}},
		{"ping enabled without targets", base + "monitors:\n  ping: #!a\n    enabled: true\n",
			[]want{{"a", "the ping monitor is enabled but has no targets"}}},
		{"ping timeout over interval", base + "monitors:\n  ping:\n    interval: 1s\n    timeout: 2s #!a\n",
			[]want{{"a", "monitors.ping.timeout 2s is longer than monitors.ping.interval 1s"}}},
		{"bool spelled yes", base + "balancing:\n  enabled: yes #!a\n",
			[]want{{"a", `balancing.enabled: "yes" is not true or false; write true or false`}}},
		{"threshold zero", base + "balancing:\n  threshold: 0 #!a\n",
			[]want{{"a", "balancing.threshold is 0; write a positive fraction of the mean load, e.g. 0.25"}}},
		{"garp count zero", base + "router:\n  garp:\n    count: 0 #!a\n",
			[]want{{"a", "router.garp.count is 0; write 1 or more"}}},
		{"listen without port", base + "management:\n  listen: 127.0.0.1 #!a\n",
			[]want{{"a", `management.listen "127.0.0.1" is not host:port`}}},
		{"tls cert without key", base + "management: #!a\n  tls_cert: cert.pem\n",
			[]want{{"a", "management needs both tls_cert and tls_key, or neither"}}},
		{"YAML syntax error", base + "ring:\n\ttick: 1ms #!a\n",
			[]want{{"a", "YAML syntax: found character that cannot start any token"}}},
		{"empty file", "", []want{{"", "the file is empty"}}},
		{"two documents", base + "--- #!a\ncluster: {name: x}\n",
			[]want{{"a", "a second YAML document"}}},
		{"no nodes no subnets", "cluster: {name: lab} #!a\nnode: {id: n1}\n",
			[]want{{"a", "nodes is missing or empty"}, {"a", "subnets is missing or empty"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lines := marks(tc.yaml)
			lines["v"] = 21   // the vips line of subnet int in base
			lines["grp"] = 33 // the group line of the second vips entry in base
			parseErrors(t, tc.yaml, lines, tc.want)
		})
	}
}

// parseErrors parses yaml as test.yaml, which must fail with exactly the
// wanted errors: each want's fragment in a message at the line of its
// #! mark (lines), or only counted when its fragment is empty. It returns
// the errors for further checks.
func parseErrors(t *testing.T, yaml string, lines map[string]int, wants []want) Errors {
	t.Helper()
	c, err := Parse("test.yaml", []byte(yaml))
	if err == nil {
		t.Fatalf("Parse accepted the config:\n%s", yaml)
	}
	if c != nil {
		t.Errorf("Parse returned a config with an error")
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want Errors: %v", err, err)
	}
	if len(errs) != len(wants) {
		t.Errorf("got %d errors, want %d:\n%v", len(errs), len(wants), err)
	}
	for _, w := range wants {
		if w.frag == "" {
			continue // counted only
		}
		found := false
		for _, e := range errs {
			if e.File == "test.yaml" && e.Line == lines[w.mark] && strings.Contains(e.Msg, w.frag) {
				found = true
			}
		}
		if !found {
			t.Errorf("no error at test.yaml:%d containing %q; got:\n%v", lines[w.mark], w.frag, err)
		}
	}
	return errs
}

// TestAllErrorsCollected checks that one pass reports every problem, from
// decoding and from the semantic checks, in file order.
func TestAllErrorsCollected(t *testing.T) {
	y := edit(t,
		"  key_file: cluster.key", "  keyfile: cluster.key #!a",
		"[203.0.113.2, 198.51.100.2]", "[203.0.113.2] #!b",
		"interface: int0", "interface: this-is-far-too-long #!c",
		"via: 203.0.113.254", "via: 192.0.2.254 #!d",
		"quorum: availability", "quorum: all #!e\nring:\n  tick: 0ms #!f\n",
	)
	_, err := Parse("all.yaml", []byte(y))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse: %v", err)
	}
	m := marks(y)
	var got []int
	for _, e := range errs {
		got = append(got, e.Line)
	}
	wantLines := []int{m["a"], m["b"], m["c"], m["d"], m["e"], m["f"]}
	if diff := cmp.Diff(wantLines, got); diff != "" {
		t.Errorf("error lines (-want +got):\n%s\nerrors:\n%v", diff, err)
	}
	// Errors prints one problem per line as file:line:col: message.
	out := strings.Split(err.Error(), "\n")
	if len(out) != len(errs) {
		t.Fatalf("Error() has %d lines for %d errors", len(out), len(errs))
	}
	if want := fmt.Sprintf("all.yaml:%d:3: unknown key", m["a"]); !strings.HasPrefix(out[0], want) {
		t.Errorf("first line %q, want prefix %q", out[0], want)
	}
}

func TestDefaults(t *testing.T) {
	d := DefaultConfig()
	r := d.Ring
	if r.Tick != 2*time.Millisecond || r.HopInterval != 4*time.Millisecond || r.MinRotation != 40*time.Millisecond ||
		r.AckTimeout != 4*time.Millisecond || r.AckRetries != 2 || r.TokenLoss != 0 || r.JoinTimeout != 200*time.Millisecond {
		t.Errorf("ring defaults changed without updating docs/config.md: %+v", r)
	}
	if got := r.AckBudget(); got != 28*time.Millisecond {
		t.Errorf("AckBudget() = %v, want 28ms (4ms+8ms+16ms)", got)
	}
	// The derived timers (docs/config.md quotes them): small rings hold the
	// token min_rotation / n, large ones hop_interval.
	for _, tt := range []struct {
		n                                  int
		hold, rotation, minLoss, tokenLoss time.Duration
	}{
		{2, 20 * ms, 44 * ms, 50 * ms, 54 * ms},    // 2 × (20+2); 1 × 22 + 28; +4
		{3, 14 * ms, 48 * ms, 60 * ms, 64 * ms},    // 3 × (14+2); max(22, 2 × 16) + 28
		{8, 6 * ms, 64 * ms, 84 * ms, 88 * ms},     // 40ms / 8 = 5ms, rounded to 3 ticks; 7 × 8 + 28
		{32, 4 * ms, 192 * ms, 214 * ms, 218 * ms}, // hop_interval; 31 × 6 + 28
	} {
		if got := r.HoldFor(tt.n); got != tt.hold {
			t.Errorf("HoldFor(%d) = %v, want %v", tt.n, got, tt.hold)
		}
		if got := r.RotationFor(tt.n); got != tt.rotation {
			t.Errorf("RotationFor(%d) = %v, want %v", tt.n, got, tt.rotation)
		}
		if got := r.MinTokenLoss(tt.n); got != tt.minLoss {
			t.Errorf("MinTokenLoss(%d) = %v, want %v", tt.n, got, tt.minLoss)
		}
		if got := r.TokenLossFor(tt.n); got != tt.tokenLoss {
			t.Errorf("TokenLossFor(%d) = %v, want %v", tt.n, got, tt.tokenLoss)
		}
	}
	// Durations become whole ticks, rounded up, at least one.
	odd := r
	odd.HopInterval, odd.MinRotation, odd.AckTimeout, odd.JoinTimeout = 5*ms, 0, ms, 200*ms
	if c := odd.Core(3); c.HopInterval != 3 || c.MinRotation != 0 || c.AckTimeout != 1 || c.JoinTimeout != 100 || c.TokenLoss != 0 || len(c.Nodes) != 3 {
		t.Errorf("Core(3) of %+v = %+v", odd, c)
	}
	r.TokenLoss = time.Second
	if got := r.TokenLossFor(3); got != time.Second {
		t.Errorf("explicit TokenLossFor = %v, want 1s", got)
	}
	if !d.Balancing.Enabled || d.Router.GARP.Count != 3 || d.Router.GARP.Interval != time.Second || d.Router.GARP.Refresh != 30*time.Second {
		t.Errorf("documented defaults changed: %+v %+v", d.Balancing, d.Router)
	}
	// A file that sets nothing optional gets exactly the defaults.
	c, err := Parse("d.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d.Ring, c.Ring); diff != "" {
		t.Errorf("ring (-default +parsed):\n%s", diff)
	}
	if diff := cmp.Diff(d.Monitors, c.Monitors, cmpNet); diff != "" {
		t.Errorf("monitors (-default +parsed):\n%s", diff)
	}
	if tc := TestConfig(); tc.Validate() != nil || tc.Ring.Tick != time.Millisecond {
		t.Errorf("TestConfig: %v, tick %v", tc.Validate(), tc.Ring.Tick)
	}
}

func TestRelativePaths(t *testing.T) {
	y := edit(t, "quorum: availability", "quorum: availability\nmanagement:\n  token_file: /abs/admin.token\n  tls_cert: tls/cert.pem\n  tls_key: tls/key.pem\n")
	c, err := Parse("/srv/gw/ringway.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{c.Cluster.KeyFile, c.Management.TokenFile, c.Management.TLSCert, c.Management.TLSKey}
	want := []string{"/srv/gw/cluster.key", "/abs/admin.token", "/srv/gw/tls/cert.pem", "/srv/gw/tls/key.pem"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
}

func TestHelpers(t *testing.T) {
	y := edit(t,
		"  id: n1\nnodes:", "  id: n2\nnodes:",
		"vips: [198.51.100.91-198.51.100.94]", "vips: [198.51.100.94, 198.51.100.91-198.51.100.92]",
		"[203.0.113.2, 198.51.100.2]", "[198.51.100.2, 203.0.113.2]")
	c, err := Parse("h.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if c.LocalIndex() != 2 || c.IndexOf("n3") != 3 || c.IndexOf("nx") != 0 || c.IndexOf("") != 0 {
		t.Errorf("indexes: local %d n3 %d", c.LocalIndex(), c.IndexOf("n3"))
	}
	if c.NodeID(1) != "n1" || c.NodeID(0) != "" || c.NodeID(4) != "" {
		t.Errorf("NodeID wrong")
	}
	// Addresses are matched to subnets by prefix, whatever their order.
	want := []netip.Addr{netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("198.51.100.2")}
	if diff := cmp.Diff(want, c.LocalAddresses(), cmpNet); diff != "" {
		t.Errorf("LocalAddresses (-want +got):\n%s", diff)
	}
	if c.SubnetOf(netip.MustParseAddr("198.51.100.77")) != 1 || c.SubnetOf(netip.MustParseAddr("192.0.2.1")) != -1 {
		t.Errorf("SubnetOf wrong")
	}
	a := netip.MustParseAddr
	wantVIPs := []VIP{
		{Addr: a("203.0.113.91"), Subnet: 0, Preferred: 1, Persistence: PersistPreferred, Group: "gw1"},
		{Addr: a("203.0.113.92"), Subnet: 0},
		{Addr: a("203.0.113.93"), Subnet: 0},
		{Addr: a("203.0.113.94"), Subnet: 0},
		{Addr: a("198.51.100.91"), Subnet: 1, Preferred: 1, Persistence: PersistPreferred, Group: "gw1"},
		{Addr: a("198.51.100.92"), Subnet: 1},
		{Addr: a("198.51.100.94"), Subnet: 1},
	}
	if diff := cmp.Diff(wantVIPs, c.AllVIPs(), cmpNet); diff != "" {
		t.Errorf("AllVIPs (-want +got):\n%s", diff)
	}
	if got := c.TokenLoss(); got != 64*time.Millisecond {
		t.Errorf("TokenLoss() = %v", got)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	y := base + "ring: {tick: 1ms, token_loss: 1s}\nbalancing: {enabled: false, threshold: 0.5}\nmonitors: {ping: {enabled: true, targets: [203.0.113.254]}}\nmanagement: {listen: ''}\n"
	c, err := Parse("/x/r.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse("/x/r.yaml", out)
	if err != nil {
		t.Fatalf("Marshal output does not parse: %v\n%s", err, out)
	}
	if diff := cmp.Diff(c, c2, cmpNet, cmpopts.IgnoreUnexported(Config{})); diff != "" {
		t.Errorf("round trip (-first +second):\n%s\n%s", diff, out)
	}
	if !strings.Contains(string(out), "vips: [203.0.113.91-203.0.113.94]") {
		t.Errorf("VIP pool not written as a range:\n%s", out)
	}
}

func TestValidateInCode(t *testing.T) {
	c := TestConfig()
	c.Subnets[0].Interface = "this-name-is-too-long"
	c.Ring.Tick = 0
	err := c.Validate()
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 2 {
		t.Fatalf("Validate = %v, want 2 errors", err)
	}
	// Without a file, messages name the key instead of a line.
	if !strings.Contains(err.Error(), "subnets[0].interface: interface") || !strings.Contains(err.Error(), "ring.tick: ring.tick is 0s") {
		t.Errorf("messages do not name the keys:\n%v", err)
	}
}

func TestLabExample(t *testing.T) {
	c, err := Load("../examples/lab/ringway.yaml")
	if err != nil {
		t.Fatalf("examples/lab/ringway.yaml: %v", err)
	}
	if got, want := c.Summary(), "cluster lab, node n1 (1 of 3), 2 subnets, 8 VIPs, 1 route"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("the example warns: %q", w)
	}
	// The filter section is shipped commented out (the data plane does not
	// read it yet); uncommented, it must be valid.
	data, err := os.ReadFile("../examples/lab/ringway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if k := strings.TrimPrefix(l, "# "); k != l && (strings.HasPrefix(k, " ") || strings.HasPrefix(k, "filter:") || strings.HasPrefix(k, "forward:")) {
			l = k
		}
		lines = append(lines, l)
	}
	on, err := Parse("uncommented.yaml", []byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatalf("the example's filter section, uncommented: %v", err)
	}
	if got, want := on.Summary(), "cluster lab, node n1 (1 of 3), 2 subnets, 8 VIPs, 1 route, filter on (2 rules, default drop, 1 local service)"; got != want {
		t.Errorf("uncommented: Summary() = %q, want %q", got, want)
	}
}

const ms = time.Millisecond

func TestWarnings(t *testing.T) {
	for _, tc := range []struct {
		listen, cert string
		warn         bool
	}{
		{"127.0.0.1:9440", "", false},
		{"[::1]:9440", "", false},
		{"localhost:9440", "", false},
		{"", "", false}, // API off
		{":9440", "", true},
		{"0.0.0.0:9440", "", true},
		{"203.0.113.1:9440", "", true},
		{"203.0.113.1:9440", "cert.pem", false},
	} {
		c := DefaultConfig()
		c.Management.Listen, c.Management.TLSCert = tc.listen, tc.cert
		if tc.cert != "" {
			c.Management.TLSKey = "key.pem"
		}
		w := c.Warnings()
		if (len(w) > 0) != tc.warn {
			t.Errorf("listen %q cert %q: warnings %q, want a warning: %v", tc.listen, tc.cert, w, tc.warn)
		}
		if len(w) > 0 && !strings.Contains(w[0], "without TLS") {
			t.Errorf("warning %q does not say what is wrong", w[0])
		}
	}
}

// Every monitor runs: an application monitor without a command is the
// built-in check (it used to be refused with a warning, before the check
// was built), so nothing is worth a warning.
func TestWarningsMonitors(t *testing.T) {
	c := DefaultConfig() // nic on by default
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings %q with the default (NIC) monitor, want none", w)
	}
	c.Monitors.Ping.Enabled, c.Monitors.Application.Enabled = true, true
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings %q with the built-in application check, want none", w)
	}
	c.Monitors.Application.Command = "systemctl is-active nftables"
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings %q with an application command, want none", w)
	}
}

// monitors.application.user: a user name, only with a command, never root.
func TestApplicationUser(t *testing.T) {
	for _, tc := range []struct{ app, want string }{
		{"{enabled: true, command: 'true', user: nobody}", ""},
		{"{enabled: true, command: 'true', user: 'No Body'}", `monitors.application.user "No Body" is not a user name`},
		{"{enabled: true, user: nobody}", "monitors.application.user is set but there is no command"},
		{"{enabled: true, command: 'true', user: root}", "monitors.application.user is root"},
	} {
		_, err := Parse("app.yaml", []byte(base+"monitors:\n  application: "+tc.app+"\n"))
		if got := fmt.Sprint(err); (tc.want == "" && err != nil) || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %v, want %q", tc.app, err, tc.want)
		}
	}
}
