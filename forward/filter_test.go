package forward

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// step is one packet and the verdict it must get.
type step struct {
	name    string
	pkt     []byte
	in, out int
	at      int64 // ns
	want    Reason
}

func run(t *testing.T, f *Filter, steps []step) {
	t.Helper()
	for _, s := range steps {
		if got := f.Forward(s.pkt, s.in, s.out, s.at); got != s.want {
			t.Errorf("%s: %v, want %v", s.name, got, s.want)
		}
	}
}

func TestTCPFlow(t *testing.T) {
	f := newFilter(t, nil)
	run(t, f, []step{
		{"mid-flow ACK with no entry", tcp(client, server, 40000, 80, tcpACK), ext, int_, 0, ReasonNoState},
		{"SYN to a port no rule accepts", tcp(client, server, 40000, 81, tcpSYN), ext, int_, 0, ReasonRule},
		{"SYN", tcp(client, server, 40000, 80, tcpSYN), ext, int_, 0, ReasonNone},
		{"SYN-ACK", tcp(server, client, 80, 40000, tcpSYN|tcpACK), int_, ext, 1, ReasonNone},
		{"ACK", tcp(client, server, 40000, 80, tcpACK), ext, int_, 2, ReasonNone},
		{"data back", tcp(server, client, 80, 40000, tcpACK), int_, ext, 3, ReasonNone},
		{"a new connection from the server side", tcp(server, client, 80, 40000+1, tcpSYN), int_, ext, 4, ReasonRule},
		{"a RST from the server side for nothing", tcp(server, client, 80, 40001, tcpRST), int_, ext, 4, ReasonNoState},
	})
	flows := f.Flows(5, 0)
	if len(flows) != 1 || flows[0].State != StateEstablished || flows[0].Rule != "web" ||
		flows[0].Src != netip.AddrPortFrom(client, 40000) || flows[0].PacketsOrig != 2 || flows[0].PacketsReply != 2 {
		t.Errorf("flows %+v, want one established web flow from the client, 2 packets each way", flows)
	}
	// Close in order: FIN, ACK, FIN, ACK → time_wait; the entry then
	// expires after the time-wait timeout.
	run(t, f, []step{
		{"FIN", tcp(client, server, 40000, 80, tcpFIN|tcpACK), ext, int_, 10, ReasonNone},
		{"ACK of FIN", tcp(server, client, 80, 40000, tcpACK), int_, ext, 11, ReasonNone},
		{"FIN back", tcp(server, client, 80, 40000, tcpFIN|tcpACK), int_, ext, 12, ReasonNone},
		{"last ACK", tcp(client, server, 40000, 80, tcpACK), ext, int_, 13, ReasonNone},
	})
	if fl := f.Flows(14, 0); len(fl) != 1 || fl[0].State != StateTimeWait {
		t.Fatalf("after the close: %+v, want time_wait", fl)
	}
	if st := f.Stats(); st.ByState[StateTimeWait] != 1 || st.ByState[StateEstablished] != 0 || st.ByState[StateNone] != 0 {
		t.Errorf("flows by state %v, want one in time_wait only", st.ByState)
	}
	late := 13 + int64(DefaultTimeouts().TCPTimeWait)
	run(t, f, []step{{"a stray ACK after time_wait expired", tcp(client, server, 40000, 80, tcpACK), ext, int_, late, ReasonNoState}})
}

func TestUDPAndRelatedICMP(t *testing.T) {
	f := newFilter(t, nil)
	req := udp(client, server, 5000, 7001, 10)
	run(t, f, []step{
		{"request", req, ext, int_, 0, ReasonNone},
		{"reply", udp(server, client, 7001, 5000, 10), int_, ext, sec, ReasonNone},
		{"a port no rule accepts", udp(client, server, 5000, 7003, 10), ext, int_, sec, ReasonRule},
		{"the server opening a flow", udp(server, client, 7001, 5001, 10), int_, ext, sec, ReasonRule},
		{"port unreachable about the tracked flow", icmpError(server, client, 3, 3, req), int_, ext, sec, ReasonNone},
		{"port unreachable about nothing", icmpError(server, client, 3, 3, udp(client, server, 5009, 7001, 0)), int_, ext, sec, ReasonRelated},
		{"time exceeded from a router about the flow", icmpError(remote, client, 11, 0, req), ext, ext, sec, ReasonNone},
	})
	if fl := f.Flows(sec, 0); len(fl) != 1 || fl[0].State != StateAssured {
		t.Fatalf("flows %+v, want one assured UDP flow", fl)
	}
	if n := len(f.FlowsWith(sec, 0, server)); n != 1 {
		t.Errorf("flows with the server: %d, want 1", n)
	}
	if n := len(f.FlowsWith(sec, 0, remote)); n != 0 {
		t.Errorf("flows with a host that sent nothing: %d, want 0", n)
	}
	// Assured flows live UDPStream after their last packet.
	at := sec + int64(DefaultTimeouts().UDPStream) - 1
	run(t, f, []step{{"reply just before the stream timeout", udp(server, client, 7001, 5000, 10), int_, ext, at, ReasonNone}})
	at += int64(DefaultTimeouts().UDPStream)
	run(t, f, []step{{"reply after the stream timeout", udp(server, client, 7001, 5000, 10), int_, ext, at, ReasonRule}})
}

func TestUnrepliedUDPTimeout(t *testing.T) {
	f := newFilter(t, nil)
	run(t, f, []step{
		{"request", udp(client, server, 5000, 7000, 1), ext, int_, 0, ReasonNone},
		{"late reply", udp(server, client, 7000, 5000, 1), int_, ext, int64(DefaultTimeouts().UDP), ReasonRule},
	})
}

func TestICMPEcho(t *testing.T) {
	f := newFilter(t, nil)
	run(t, f, []step{
		{"echo request in", echo(client, server, icmpEcho, 7), ext, int_, 0, ReasonNone},
		{"its reply", echo(server, client, icmpEchoReply, 7), int_, ext, 1, ReasonNone},
		{"a reply with another id", echo(server, client, icmpEchoReply, 8), int_, ext, 1, ReasonNoState},
		{"echo request out (no rule)", echo(server, client, icmpEcho, 9), int_, ext, 1, ReasonRule},
	})
}

func TestSpoofing(t *testing.T) {
	f := newFilter(t, func(c *Config) { c.Default = Accept })
	for _, tc := range []struct {
		src  string
		in   int
		want Reason
	}{
		{"198.51.100.20", ext, ReasonSpoofSubnet},
		{"203.0.113.91", ext, ReasonSpoofVIP},
		{"198.51.100.91", int_, ReasonSpoofVIP},
		{"203.0.113.1", ext, ReasonSpoofVIP}, // our own primary
		{"169.254.1.1", ext, ReasonSpoofMartian},
		{"127.0.0.1", ext, ReasonSpoofMartian},
		{"0.1.2.3", ext, ReasonSpoofMartian},
		{"224.0.0.5", ext, ReasonSpoofMartian},
		{"203.0.113.255", ext, ReasonSpoofBroadcast},
		{"198.51.100.255", ext, ReasonSpoofBroadcast},
		{"203.0.113.20", ext, ReasonNone},
		{"192.0.2.50", ext, ReasonNone}, // beyond the ext router
		{"198.51.100.20", int_, ReasonNone},
	} {
		p := udp(netip.MustParseAddr(tc.src), server, 1000, 2000, 0)
		out := int_
		if tc.in == int_ {
			p = udp(netip.MustParseAddr(tc.src), client, 1000, 2000, 0)
			out = ext
		}
		if got := f.Forward(p, tc.in, out, 0); got != tc.want {
			t.Errorf("source %s on link %d: %v, want %v", tc.src, tc.in, got, tc.want)
		}
	}
	st := f.Stats()
	if st.Drops[ReasonSpoofMartian] != 4 || st.Drops[ReasonSpoofVIP] != 3 {
		t.Errorf("drop counters %v, want 4 martian and 3 VIP", st.Drops)
	}
}

func TestLocalServices(t *testing.T) {
	f := newFilter(t, nil)
	vip := netip.MustParseAddr("203.0.113.91")
	for _, tc := range []struct {
		name string
		pkt  []byte
		want Reason
	}{
		{"ssh", tcp(client, vip, 40000, 22, tcpSYN), ReasonNone},
		{"ssh, mid-flow", tcp(client, vip, 40000, 22, tcpACK), ReasonNone},
		{"another TCP port", tcp(client, vip, 40000, 23, tcpSYN), ReasonLocal},
		{"UDP to 22", udp(client, vip, 40000, 22, 0), ReasonLocal},
		{"spoofed", tcp(netip.MustParseAddr("198.51.100.7"), vip, 1, 22, tcpSYN), ReasonSpoofSubnet},
	} {
		if got := f.Local(tc.pkt, ext, 0); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// At the cap, new flows are refused and counted; flows already tracked
// keep passing; once one expires, a new one fits.
func TestTableFull(t *testing.T) {
	f := newFilter(t, func(c *Config) { c.MaxFlows = 3 })
	for i := range 3 {
		if r := f.Forward(udp(client, server, uint16(5000+i), 7000, 0), ext, int_, 0); r != ReasonNone {
			t.Fatalf("flow %d: %v", i, r)
		}
	}
	run(t, f, []step{
		{"a fourth flow", udp(client, server, 5003, 7000, 0), ext, int_, sec, ReasonTableFull},
		{"the first flow's reply", udp(server, client, 7000, 5000, 0), int_, ext, sec, ReasonNone},
		{"the third flow", udp(client, server, 5002, 7000, 0), ext, int_, sec, ReasonNone},
	})
	if st := f.Stats(); st.Flows != 3 || st.Drops[ReasonTableFull] != 1 {
		t.Errorf("stats %+v, want 3 flows and 1 table_full drop", st)
	}
	// Flow 2 (5001) expires 30 s after its only packet; Sweep frees it.
	f.Sweep(int64(DefaultTimeouts().UDP))
	if n := f.Stats().Flows; n != 2 {
		t.Errorf("after the sweep %d flows, want 2", n)
	}
	run(t, f, []step{{"a new flow once one expired", udp(client, server, 5003, 7000, 0), ext, int_, int64(DefaultTimeouts().UDP), ReasonNone}})
}

// A fragmented UDP datagram of an accepted flow passes whole; fragments of
// a refused datagram, or whose first fragment was never seen, do not.
func TestFragments(t *testing.T) {
	f := newFilter(t, nil)
	big := udp(client, server, 5000, 7000, 3000)
	for off := 0; off < len(big)-20; off += 1480 {
		if r := f.Forward(fragment(big, off, 1480), ext, int_, 0); r != ReasonNone {
			t.Fatalf("fragment at %d of an accepted datagram: %v", off, r)
		}
	}
	refused := udp(client, server, 5000, 9999, 3000)
	refused[5] = 0x99 // another IP id
	for off := 0; off < len(refused)-20; off += 1480 {
		want := ReasonFragment
		if off == 0 {
			want = ReasonRule
		}
		if r := f.Forward(fragment(refused, off, 1480), ext, int_, 0); r != want {
			t.Errorf("fragment at %d of a refused datagram: %v, want %v", off, r, want)
		}
	}
	orphan := udp(client, server, 5000, 7000, 3000)
	orphan[5] = 0x77
	if r := f.Forward(fragment(orphan, 1480, 1480), ext, int_, 0); r != ReasonFragment {
		t.Errorf("a fragment without its first: %v, want fragment", r)
	}
}

func TestFragmentTrackerBounded(t *testing.T) {
	f := newFilter(t, func(c *Config) { c.MaxFragments = 4; c.Default = Accept })
	for i := range 6 {
		p := udp(client, server, 5000, 7000, 100)
		p[4], p[5] = 0, byte(i)
		want := ReasonNone
		if i >= 4 {
			want = ReasonFragFull
		}
		if r := f.Forward(fragment(p, 0, 48), ext, int_, 0); r != want {
			t.Errorf("first fragment %d: %v, want %v", i, r, want)
		}
	}
	if n := f.Stats().Fragments; n != 4 {
		t.Errorf("tracker holds %d, want 4", n)
	}
	// Once the entries expire there is room again.
	p := udp(client, server, 5000, 7000, 100)
	p[5] = 0x55
	if r := f.Forward(fragment(p, 0, 48), ext, int_, fragTimeout); r != ReasonNone {
		t.Errorf("after expiry: %v", r)
	}
}

func TestMalformed(t *testing.T) {
	f := newFilter(t, func(c *Config) { c.Default = Accept })
	good := tcp(client, server, 1, 80, tcpSYN)
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short header", good[:19]},
		{"short TCP", good[:30]},
		{"IPv6 version", append([]byte{0x60}, good[1:]...)},
		{"total length beyond the buffer", append(append([]byte{}, good[:2]...), append([]byte{0xff, 0xff}, good[4:]...)...)},
	} {
		if r := f.Forward(tc.b, ext, int_, 0); r != ReasonMalformed {
			t.Errorf("%s: %v, want malformed", tc.name, r)
		}
	}
}

// The config's rule order: first match wins, then the default.
func TestRuleOrder(t *testing.T) {
	f := newFilter(t, func(c *Config) {
		c.Rules = []Rule{
			{Name: "block-one", FromPrefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.66/32")}, Action: Drop},
			{Name: "all-udp", Proto: ProtoUDP, Action: Accept},
		}
		c.Default = Drop
	})
	run(t, f, []step{
		{"blocked host", udp(netip.MustParseAddr("203.0.113.66"), server, 1, 2, 0), ext, int_, 0, ReasonRule},
		{"other host", udp(client, server, 1, 2, 0), ext, int_, 0, ReasonNone},
		{"tcp falls to the default", tcp(client, server, 1, 2, tcpSYN), ext, int_, 0, ReasonRule},
	})
	if diff := cmp.Diff("all-udp", f.Flows(0, 0)[0].Rule); diff != "" {
		t.Error(diff)
	}
}

// A busy flow's lookup and a new flow in a table at steady state allocate
// nothing.
func TestForwardAllocs(t *testing.T) {
	f := newFilter(t, nil)
	syn := tcp(client, server, 40000, 80, tcpSYN)
	f.Forward(syn, ext, int_, 0)
	data := tcp(server, client, 80, 40000, tcpACK)
	if n := testing.AllocsPerRun(1000, func() { f.Forward(data, int_, ext, 1) }); n != 0 {
		t.Errorf("established packet: %v allocs, want 0", n)
	}
	// New flows reuse freed slots: churn 100 flows in and out first.
	pkts := make([][]byte, 100)
	for i := range pkts {
		pkts[i] = udp(client, server, uint16(10000+i), 7000, 0)
	}
	now := int64(0)
	churn := func() {
		for _, p := range pkts {
			f.Forward(p, ext, int_, now)
		}
		now += int64(time.Hour)
		f.Sweep(now)
		f.Sweep(now)
	}
	churn()
	if n := testing.AllocsPerRun(20, churn); n != 0 {
		t.Errorf("100 new flows at steady state: %v allocs, want 0", n)
	}
}

// N distinct attacker flows cost bounded memory: the table stops at its
// cap whatever the sender does.
func TestFloodBounded(t *testing.T) {
	f := newFilter(t, func(c *Config) { c.MaxFlows = 1000; c.Default = Accept })
	for i := range 20000 {
		src := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		f.Forward(udp(src, server, uint16(i>>8), 7000, 0), ext, int_, 0)
	}
	st := f.Stats()
	if st.Flows != 1000 || st.Drops[ReasonTableFull] != 19000 {
		t.Errorf("after 20000 flows at a cap of 1000: %d flows, %d refused", st.Flows, st.Drops[ReasonTableFull])
	}
	slots := 0
	for i := range f.tab.shards {
		slots += len(f.tab.shards[i].slab)
	}
	if slots > 1000 {
		t.Errorf("%d entry slots allocated for a cap of 1000", slots)
	}
}

func ExampleReason() {
	fmt.Println(ReasonNoState, ReasonSpoofVIP)
	// Output: no_state spoofed_vip
}

// SetRules (a reload): a flow the old rules accepted keeps passing both
// ways; a new flow meets the new rules; a rule that does not compile
// leaves the old ones in place.
func TestSetRules(t *testing.T) {
	f := newFilter(t, func(c *Config) {
		c.Rules = []Rule{{Name: "all-udp", Proto: ProtoUDP, Action: Accept}}
		c.Default = Drop
	})
	run(t, f, []step{{"old rules accept", udp(client, server, 1000, 7000, 0), ext, int_, 0, ReasonNone}})
	if err := f.SetRules(Drop, []Rule{{Name: "bad", FromLinks: []int{9}, Action: Accept}}, nil); err == nil {
		t.Error("a rule on link 9 of 2 accepted")
	}
	if err := f.SetRules(Drop, []Rule{{Name: "tcp-only", Proto: ProtoTCP, Action: Accept}}, nil); err != nil {
		t.Fatal(err)
	}
	run(t, f, []step{
		{"the open flow goes on", udp(client, server, 1000, 7000, 0), ext, int_, 1, ReasonNone},
		{"and its replies", udp(server, client, 7000, 1000, 0), int_, ext, 2, ReasonNone},
		{"a new UDP flow is refused", udp(client, server, 1001, 7000, 0), ext, int_, 3, ReasonRule},
		{"a new TCP flow passes", tcp(client, server, 2000, 80, tcpSYN), ext, int_, 4, ReasonNone},
	})
}
