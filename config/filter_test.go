package config

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// contractFilter is the filter and forward part of DESIGN.md's config
// contract, verbatim: it must work as written.
const contractFilter = `filter:                                 # the stateful filter; absent = forward everything (stateless)
  enabled: true
  default: drop                         # verdict for a new flow no rule matches: drop | accept
  rules:                                # first match wins; decides a flow's first packet only
    - name: clients-to-service
      from: [ext]                       # subnet names, prefixes, or any
      to: [198.51.100.10/32]
      proto: udp                        # tcp | udp | icmp | any
      ports: [7000, 7001-7002]          # destination ports (tcp, udp)
      action: accept
    - name: inside-out
      from: [int]
      to: [any]
      proto: any
      action: accept
  local:                                # services of the node's own OS reachable on VIPs
    - proto: tcp
      ports: [22]
forward:
  port: 7947                            # inter-node tunnel, UDP on every primary address
`

// filterBase is base with the contract's filter; cases edit it.
const filterBase = base + contractFilter

// editFilter applies old→new replacements to filterBase; each old must be
// present.
func editFilter(t *testing.T, pairs ...string) string {
	t.Helper()
	s := filterBase
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("editFilter: %q not in filterBase", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

func TestFilterContract(t *testing.T) {
	c, err := Parse("/etc/ringway/ringway.yaml", []byte(filterBase))
	if err != nil {
		t.Fatalf("the contract's filter section: %v", err)
	}
	pfx := netip.MustParsePrefix
	want := DefaultConfig().Filter
	want.Enabled = true
	want.Default = ActionDrop
	want.Rules = []Rule{{
		Name:   "clients-to-service",
		From:   []Net{{Name: "ext", Prefix: pfx("203.0.113.0/24")}},
		To:     []Net{{Prefix: pfx("198.51.100.10/32")}},
		Proto:  ProtoUDP,
		Ports:  []PortRange{{7000, 7000}, {7001, 7002}},
		Action: ActionAccept,
	}, {
		Name:   "inside-out",
		From:   []Net{{Name: "int", Prefix: pfx("198.51.100.0/24")}},
		To:     []Net{{Prefix: pfx("0.0.0.0/0")}},
		Proto:  ProtoAny,
		Action: ActionAccept,
	}}
	want.Local = []LocalService{{Proto: ProtoTCP, Ports: []PortRange{{22, 22}}}}
	if diff := cmp.Diff(want, c.Filter, cmpNet); diff != "" {
		t.Errorf("filter (-want +got):\n%s", diff)
	}
	if !c.FilterEnabled() || c.Forward.Port != 7947 {
		t.Errorf("FilterEnabled() = %v, forward.port %d", c.FilterEnabled(), c.Forward.Port)
	}
	if got, want := c.Summary(), "cluster lab, node n1 (1 of 3), 2 subnets, 8 VIPs, 1 route, filter on (2 rules, default drop, 1 local service)"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings %q, want none", w)
	}
	// The data plane reads prefixes: subnet names resolved, absent = any.
	r := c.Filter.Rules[1]
	if diff := cmp.Diff([]netip.Prefix{pfx("198.51.100.0/24")}, r.FromPrefixes(), cmpNet); diff != "" {
		t.Errorf("FromPrefixes (-want +got):\n%s", diff)
	}
	r.To = nil
	if diff := cmp.Diff([]netip.Prefix{pfx("0.0.0.0/0")}, r.ToPrefixes(), cmpNet); diff != "" {
		t.Errorf("ToPrefixes of an absent to (-want +got):\n%s", diff)
	}
	// Protocols carry their IANA numbers, as in the IPv4 header.
	if ProtoICMP != 1 || ProtoTCP != 6 || ProtoUDP != 17 || ProtoAny != 0 {
		t.Errorf("protocol numbers changed")
	}
}

// Without a filter section (or with enabled: false) forwarding stays
// stateless, as before the filter existed.
func TestFilterAbsent(t *testing.T) {
	c, err := Parse("a.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.FilterEnabled() {
		t.Errorf("FilterEnabled() with no filter section")
	}
	if diff := cmp.Diff(DefaultConfig().Filter, c.Filter, cmpNet); diff != "" {
		t.Errorf("absent filter is not the default (-want +got):\n%s", diff)
	}
	c, err = Parse("a.yaml", []byte(editFilter(t, "  enabled: true", "  enabled: false")))
	if err != nil {
		t.Fatal(err)
	}
	if c.FilterEnabled() || c.Summary() != "cluster lab, node n1 (1 of 3), 2 subnets, 8 VIPs, 1 route" {
		t.Errorf("enabled: false: FilterEnabled() %v, Summary() %q", c.FilterEnabled(), c.Summary())
	}
	// An empty section keeps the defaults, like every other section.
	c, err = Parse("a.yaml", []byte(base+"filter:\nforward:\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.FilterEnabled() || c.Forward.Port != DefaultForwardPort || c.Filter.MaxFlows != DefaultMaxFlows {
		t.Errorf("empty sections: %+v %+v", c.Filter, c.Forward)
	}
}

func TestFilterDefaults(t *testing.T) {
	f := DefaultConfig().Filter
	// The Linux kernel's nf_conntrack defaults (kernel 6.x), in seconds.
	want := Timeouts{
		TCPSynSent:     120 * time.Second,
		TCPSynRecv:     60 * time.Second,
		TCPEstablished: 432000 * time.Second,
		TCPFinWait:     120 * time.Second,
		TCPCloseWait:   60 * time.Second,
		TCPLastAck:     30 * time.Second,
		TCPTimeWait:    120 * time.Second,
		TCPClose:       10 * time.Second,
		UDP:            30 * time.Second,
		UDPStream:      120 * time.Second,
		ICMP:           30 * time.Second,
	}
	if diff := cmp.Diff(want, f.Timeouts); diff != "" {
		t.Errorf("timeouts changed without updating docs/config.md (-want +got):\n%s", diff)
	}
	if f.Enabled || f.Default != ActionDrop || f.MaxFlows != 1048576 || f.MaxFragments != 1024 || DefaultConfig().Forward.Port != 7947 {
		t.Errorf("documented defaults changed: %+v, forward %+v", f, DefaultConfig().Forward)
	}
}

func TestBadFilters(t *testing.T) {
	const rule3 = "    - name: int-web\n      from: [int]\n      to: [203.0.113.0/24]\n      proto: tcp\n      ports: [80]\n      action: drop\n"
	cases := []struct {
		name string
		yaml string
		want []want
		at   string // if set, the column of the first error is where this text starts on its line
	}{
		{"unknown subnet name", editFilter(t, "from: [ext]", "from: [ext, dmz] #!a"),
			[]want{{"a", `from: subnet "dmz" is not known; write one of ext, int, a prefix such as 192.0.2.0/24, or any`}}, "dmz"},
		{"unknown subnet name in to", editFilter(t, "to: [any]", "to: [Ext] #!a"),
			[]want{{"a", `to: subnet "Ext" is not known; write one of ext, int`}}, "Ext"},
		{"prefix too long", editFilter(t, "to: [198.51.100.10/32]", "to: [198.51.100.10/33] #!a"),
			[]want{{"a", `"198.51.100.10/33" is not an IPv4 prefix; write it such as 192.0.2.0/24`}}, "198"},
		{"prefix with host bits", editFilter(t, "to: [198.51.100.10/32]", "to: [198.51.100.10/24] #!a"),
			[]want{{"a", `"198.51.100.10/24" has host bits set; write 198.51.100.0/24`}}, ""},
		{"bad address", editFilter(t, "to: [198.51.100.10/32]", "to: [198.51.100.300] #!a"),
			[]want{{"a", `"198.51.100.300" is not an IPv4 address; write a dotted quad, a prefix such as 192.0.2.0/24, a subnet name or any`}}, ""},
		{"IPv6 prefix", editFilter(t, "to: [198.51.100.10/32]", "to: ['2001:db8::/32'] #!a"),
			[]want{{"a", `"2001:db8::/32" is not IPv4; ringway routes IPv4 only`}}, ""},
		{"from not a list", editFilter(t, "from: [ext]", "from: ext #!a"),
			[]want{{"a", `filter.rules.from: expected a list ([a, b] or lines starting with -), found the value "ext"`}}, "ext"},
		{"empty from", editFilter(t, "from: [ext]", "from: [] #!a"),
			[]want{{"a", `from: [] matches no source, so "clients-to-service" can never match; remove the key to match any source`}}, "from"},
		{"empty item", editFilter(t, "from: [ext]", "from: [~] #!a"),
			[]want{{"a", "filter.rules.from has no value; write a subnet name, a prefix such as 192.0.2.0/24, or any, or remove the key"}}, "~"},
		{"ports with icmp", editFilter(t, "proto: udp", "proto: icmp", "ports: [7000, 7001-7002]", "ports: [7000, 7001-7002] #!a"),
			[]want{{"a", "ports are given with proto icmp; ports apply to tcp and udp only: write proto: tcp or proto: udp, or remove ports"}}, "ports"},
		{"ports with any", editFilter(t, "proto: udp", "proto: any", "ports: [7000, 7001-7002]", "ports: [7000, 7001-7002] #!a"),
			[]want{{"a", "ports are given with proto any; ports apply to tcp and udp only"}}, ""},
		{"ports without proto", editFilter(t, "      proto: udp                        # tcp | udp | icmp | any\n", "", "ports: [7000, 7001-7002]", "ports: [7000, 7001-7002] #!a"),
			[]want{{"a", "ports are given but proto is not (so it is any); ports apply to tcp and udp only: add proto: tcp or proto: udp, or remove ports"}}, ""},
		{"port zero", editFilter(t, "ports: [7000, 7001-7002]", "ports: [0, 7001-7002] #!a"),
			[]want{{"a", "port 0 is out of range; write a number from 1 to 65535"}}, "0,"},
		{"port too large", editFilter(t, "ports: [22]", "ports: [22, 65536] #!a"),
			[]want{{"a", "port 65536 is out of range; write a number from 1 to 65535"}}, "65536"},
		{"range end too large", editFilter(t, "ports: [7000, 7001-7002]", "ports: [7000, 7001-70000] #!a"),
			[]want{{"a", "port 70000 is out of range; write a number from 1 to 65535"}}, "7001-"},
		{"reversed port range", editFilter(t, "ports: [7000, 7001-7002]", "ports: [7000, 7002-7001] #!a"),
			[]want{{"a", `port range "7002-7001" runs backwards; write 7001-7002`}}, "7002-"},
		{"port by name", editFilter(t, "ports: [22]", "ports: [ssh] #!a"),
			[]want{{"a", `port "ssh" is not a port or a range; write a number from 1 to 65535, or a range such as 7000-7002`}}, "ssh"},
		{"empty ports", editFilter(t, "ports: [7000, 7001-7002]", "ports: [] #!a"),
			[]want{{"a", `ports: [] matches no port, so "clients-to-service" can never match; remove the key to match every port`}}, ""},
		{"unknown proto", editFilter(t, "proto: udp", "proto: sctp #!a"),
			[]want{{"a", `proto "sctp" is not known; write tcp, udp, icmp or any`}}, "sctp"},
		{"unknown action", editFilter(t, "      action: accept\n    - name: inside-out", "      action: allow #!a\n    - name: inside-out"),
			[]want{{"a", `verdict "allow" is not known; write accept or drop`}}, "allow"},
		{"unknown default", editFilter(t, "default: drop", "default: reject #!a"),
			[]want{{"a", `verdict "reject" is not known; write accept or drop`}}, "reject"},
		{"rule without action", editFilter(t, "    - name: clients-to-service", "    - name: clients-to-service #!a", "      action: accept\n    - name: inside-out", "    - name: inside-out"),
			[]want{{"a", `"clients-to-service" has no action; add action: accept or action: drop`}}, "name"},
		{"duplicate rule name", editFilter(t, "    - name: inside-out", "    - name: clients-to-service #!a"),
			[]want{{"a", `rule name "clients-to-service" is used twice (also on line 39); give each rule its own name`}}, "clients"},
		{"unknown rule key", editFilter(t, "      proto: any", "      protocol: any #!a"),
			[]want{{"a", `unknown key "protocol" in filter.rules; known keys are action, from, name, ports, proto, to`}}, "protocol"},
		{"misspelt rule key", editFilter(t, "      proto: any", "      prto: any #!a"),
			[]want{{"a", `unknown key "prto" in filter.rules; did you mean "proto"?`}}, "prto"},
		{"shadowed by a wider rule", editFilter(t, "  local:", rule3+"  local: #!x", "    - name: int-web", "    - name: int-web #!a"),
			[]want{{"a", `"int-web" can never match: "inside-out" (line 45) comes first and matches every packet it matches; move "int-web" above it, or remove it`}}, "name"},
		{"shadowed by an equal rule", editFilter(t, "  local:", "    - name: again\n      from: [int]\n      to: [any]\n      proto: any #!x\n      action: accept\n  local:", "    - name: again", "    - name: again #!a"),
			[]want{{"a", `"again" can never match: "inside-out" (line 45) comes first and matches every packet it matches, with the same action; remove "again"`}}, ""},
		{"shadowed by prefixes and ports together", editFilter(t,
			"      from: [ext]", "      from: [203.0.113.0/25, 203.0.113.128/25]",
			"  local:", "    - from: [ext] #!a\n      to: [198.51.100.10]\n      proto: udp\n      ports: [7001-7002, 7000]\n      action: drop\n  local:"),
			[]want{{"a", `rule 3 can never match: "clients-to-service" (line 39) comes first and matches every packet it matches; move rule 3 above it`}}, "from"},
		{"timeout zero", base + "filter:\n  timeouts:\n    tcp_established: 0s #!a\n",
			[]want{{"a", "filter.timeouts.tcp_established is 0s; write a positive duration (default 120h0m0s)"}}, "0s"},
		{"timeout negative", base + "filter:\n  timeouts:\n    udp: -1s #!a\n",
			[]want{{"a", "filter.timeouts.udp is -1s; write a positive duration (default 30s)"}}, ""},
		{"timeout without unit", base + "filter:\n  timeouts:\n    icmp: 30 #!a\n",
			[]want{{"a", "filter.timeouts.icmp: 30 has no unit; write it with one, such as 30ms or 30s"}}, ""},
		{"timeout in days", base + "filter:\n  timeouts:\n    tcp_established: 5d #!a\n",
			[]want{{"a", `filter.timeouts.tcp_established: "5d" is not a duration; write a number with a unit (ns, us, ms, s, m, h)`}}, ""},
		{"unknown timeout", base + "filter:\n  timeouts:\n    tcp_establish: 1h #!a\n",
			[]want{{"a", `unknown key "tcp_establish" in filter.timeouts; did you mean "tcp_established"?`}}, ""},
		{"max_flows zero", base + "filter:\n  max_flows: 0 #!a\n",
			[]want{{"a", "filter.max_flows is 0; write a number of flows from 1 to 67108864 (default 1048576)"}}, "0"},
		{"max_flows absurd", base + "filter:\n  max_flows: 100_000_000 #!a\n",
			[]want{{"a", "filter.max_flows is 100000000; write a number of flows from 1 to 67108864"}}, ""},
		{"defer negative", base + "filter:\n  defer: -1ms #!a\n",
			[]want{{"a", "filter.defer is -1ms; write a duration from 0s (off) to 1s (default 10ms)"}}, ""},
		{"defer too long", base + "filter:\n  defer: 2s #!a\n",
			[]want{{"a", "filter.defer is 2s; write a duration from 0s (off) to 1s (default 10ms)"}}, ""},
		{"max_fragments zero", base + "filter:\n  max_fragments: 0 #!a\n",
			[]want{{"a", "filter.max_fragments is 0; write a number of fragments from 1 to 1048576 (default 1024)"}}, ""},
		{"local icmp", editFilter(t, "    - proto: tcp\n      ports: [22]", "    - proto: icmp #!a"),
			[]want{{"a", "filter.local needs no entry for icmp: the router answers ICMP echo to a VIP itself; remove this entry"}, {"a", "filter.local entry 1 has no ports"}}, "proto"},
		{"local without ports", editFilter(t, "    - proto: tcp\n      ports: [22]", "    - proto: udp #!a"),
			[]want{{"a", "filter.local entry 1 has no ports; add ports: [the service's ports], e.g. [22]"}}, "proto"},
		{"local without proto", editFilter(t, "    - proto: tcp\n      ports: [22]", "    - ports: [22] #!a"),
			[]want{{"a", "filter.local entry 1 needs proto: tcp or udp (the protocol the service listens on)"}}, "ports"},
		{"local proto any", editFilter(t, "    - proto: tcp\n      ports: [22]", "    - proto: any #!a\n      ports: [22]"),
			[]want{{"a", "filter.local entry 1 needs proto: tcp or udp"}}, ""},
		{"forward port zero", editFilter(t, "  port: 7947", "  port: 0 #!a"),
			[]want{{"a", "forward.port is 0; use a UDP port from 1 to 65535 (default 7947), the same on every node"}}, "0"},
		{"forward port is the ring's", editFilter(t, "  port: 7947", "  port: 7946 #!a"),
			[]want{{"a", "forward.port is 7946, the same as ring.port; the tunnel needs its own UDP port: write another one (default 7947)"}}, ""},
		{"ring moved onto the tunnel's default port", base + "ring:\n  port: 7947 #!a\n",
			[]want{{"a", "ring.port is 7947, the default port of the inter-node tunnel (forward.port); write another ring.port, or set forward.port to another free UDP port"}}, "7947"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := parseErrors(t, tc.yaml, marks(tc.yaml), tc.want)
			if tc.at != "" && len(errs) > 0 {
				line := strings.Split(tc.yaml, "\n")[errs[0].Line-1]
				if col := strings.Index(line, tc.at) + 1; col == 0 || errs[0].Column != col {
					t.Errorf("first error at column %d, want %d (where %q starts in %q)", errs[0].Column, col, tc.at, line)
				}
			}
		})
	}
}

// Rules that only look alike are not reported as shadowed: a narrower rule
// first, a port or address outside the earlier rule, another protocol.
func TestFilterNotShadowed(t *testing.T) {
	for _, tc := range []struct{ name, rules string }{
		{"narrow before wide", "    - {name: a, from: [int], to: [203.0.113.10], proto: tcp, ports: [80], action: drop}\n    - {name: b, from: [int], action: accept}\n"},
		{"one more port", "    - {name: a, proto: tcp, ports: [80-89], action: drop}\n    - {name: b, proto: tcp, ports: [80-90], action: accept}\n"},
		{"every port after some", "    - {name: a, proto: udp, ports: [1-65535], action: drop}\n    - {name: b, proto: udp, action: accept}\n"},
		{"another protocol", "    - {name: a, proto: tcp, action: drop}\n    - {name: b, proto: udp, action: accept}\n"},
		{"a wider source", "    - {name: a, from: [203.0.113.0/25], action: drop}\n    - {name: b, from: [ext], action: accept}\n"},
		{"covered only by two rules", "    - {name: a, proto: tcp, action: drop}\n    - {name: b, proto: udp, action: drop}\n    - {name: c, proto: any, action: accept}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := base + "filter:\n  enabled: true\n  rules:\n" + tc.rules
			if _, err := Parse("n.yaml", []byte(y)); err != nil {
				t.Errorf("%v\n%s", err, y)
			}
		})
	}
}

// prefixCovered and portsCover against a slow, obviously right model:
// enumerate every address (in a small space) and every port.
func TestCoverModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// Prefixes inside 10.0.0.0/26: 64 addresses, lengths /26 to /32.
	randPrefix := func() netip.Prefix {
		bits := 26 + rng.IntN(7)
		a := netip.AddrFrom4([4]byte{10, 0, 0, byte(rng.IntN(64))})
		return netip.PrefixFrom(a, bits).Masked()
	}
	for i := 0; i < 20000; i++ {
		p := randPrefix()
		qs := make([]netip.Prefix, rng.IntN(6))
		for j := range qs {
			qs[j] = randPrefix()
		}
		want := true
		for x := 0; x < 64; x++ {
			a := netip.AddrFrom4([4]byte{10, 0, 0, byte(x)})
			in := false
			for _, q := range qs {
				in = in || q.Contains(a)
			}
			if p.Contains(a) && !in {
				want = false
			}
		}
		if got := prefixCovered(p, qs); got != want {
			t.Fatalf("prefixCovered(%v, %v) = %v, want %v", p, qs, got, want)
		}
	}
	randRange := func() PortRange {
		a, b := uint16(1+rng.IntN(40)), uint16(1+rng.IntN(40))
		return PortRange{min(a, b), max(a, b)}
	}
	for i := 0; i < 20000; i++ {
		as, bs := make([]PortRange, 1+rng.IntN(4)), make([]PortRange, 1+rng.IntN(3))
		for j := range as {
			as[j] = randRange()
		}
		for j := range bs {
			bs[j] = randRange()
		}
		want := true
		for port := uint16(1); port <= 40; port++ {
			inA, inB := false, false
			for _, r := range as {
				inA = inA || r.Contains(port)
			}
			for _, r := range bs {
				inB = inB || r.Contains(port)
			}
			if inB && !inA {
				want = false
			}
		}
		if got := portsCover(as, bs); got != want {
			t.Fatalf("portsCover(%v, %v) = %v, want %v", as, bs, got, want)
		}
	}
}

func TestFilterWarnings(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"contract", filterBase, ""},
		{"absent", base, ""},
		{"enabled, default drop, no rules", base + "filter: {enabled: true}\n",
			"filter is enabled with default: drop and no rule that accepts: nothing passes through this node"},
		{"enabled, default drop, only drop rules", base + "filter:\n  enabled: true\n  rules: [{name: a, proto: tcp, action: drop}]\n",
			"nothing passes"},
		{"enabled, default accept, no rules", base + "filter: {enabled: true, default: accept}\n", ""},
		{"disabled with rules", editFilter(t, "  enabled: true", "  enabled: false"),
			"filter.enabled is false, so its 2 rules and 1 local service are ignored: every packet is forwarded statelessly and every port of every VIP reaches this node's OS; set filter.enabled: true to apply them"},
		{"enabled left out, with rules", editFilter(t, "  enabled: true\n", ""), "filter.enabled is false"},
		{"disabled, local only", base + "filter:\n  local: [{proto: tcp, ports: [22]}]\n", "its 0 rules and 1 local service are ignored"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("w.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			w := c.Warnings()
			switch {
			case tc.want == "" && len(w) != 0:
				t.Errorf("warnings %q, want none", w)
			case tc.want != "" && (len(w) != 1 || !strings.Contains(w[0], tc.want)):
				t.Errorf("warnings %q, want one containing %q", w, tc.want)
			}
		})
	}
}

func TestFilterMarshalRoundTrip(t *testing.T) {
	y := editFilter(t, "  local:", "    - {from: [192.0.2.7, ext], to: [198.51.100.0/25], proto: icmp, action: drop}\n  max_flows: 4096\n  timeouts: {udp: 10s}\n  local:")
	c, err := Parse("/x/f.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse("/x/f.yaml", out)
	if err != nil {
		t.Fatalf("Marshal output does not parse: %v\n%s", err, out)
	}
	if diff := cmp.Diff(c, c2, cmpNet, cmpopts.IgnoreUnexported(Config{})); diff != "" {
		t.Errorf("round trip (-first +second):\n%s\n%s", diff, out)
	}
	for _, s := range []string{"ports: [7000, 7001-7002]", "from: [192.0.2.7/32, ext]", "to: [any]"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

// A Config built in code names subnets in rules too: Validate resolves them
// and reports the unknown ones by key.
func TestFilterValidateInCode(t *testing.T) {
	c := TestConfig()
	c.Filter.Enabled = true
	c.Filter.Rules = []Rule{
		{Name: "a", From: []Net{{Name: "int"}}, Proto: ProtoTCP, Ports: []PortRange{{443, 443}}, Action: ActionAccept},
		{Name: "b", To: []Net{{Name: "dmz"}}, Ports: []PortRange{{0, 10}}},
	}
	err := c.Validate()
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 4 {
		t.Fatalf("Validate = %v, want 4 errors", err)
	}
	for _, s := range []string{
		`filter.rules[1].to[0]: to: subnet "dmz" is not known; write one of ext, int`,
		"filter.rules[1].ports: ports are given with proto any",
		"filter.rules[1].ports[0]: port range 0-10: write ports from 1 to 65535",
		`filter.rules[1]: "b" has no action`,
	} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("errors lack %q:\n%v", s, err)
		}
	}
	if got, want := c.Filter.Rules[0].From[0].Prefix, netip.MustParsePrefix("198.51.100.0/24"); got != want {
		t.Errorf("subnet int resolved to %v, want %v", got, want)
	}
}
