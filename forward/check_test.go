package forward

import (
	"net/netip"
	"testing"
)

// Check is Forward without effects: over a sequence that walks every
// branch of the verdict (new flows accepted and refused, replies, mid-flow
// TCP without state, spoofed sources, related and unrelated ICMP errors,
// fragments, a full table), Check before each packet says what Forward then
// decides, and Check alone changes no counter, flow or fragment record.
func TestCheckAgreesWithForward(t *testing.T) {
	f := newFilter(t, func(c *Config) { c.MaxFlows = 4 })
	req := udp(client, server, 5000, 7001, 10)
	big := udp(client, server, 5100, 7000, 64)
	steps := []struct {
		name    string
		ip      []byte
		in, out int
		want    Reason // Forward's verdict: the sequence covers each branch
	}{
		{"request", req, ext, int_, ReasonNone},
		{"reply", udp(server, client, 7001, 5000, 10), int_, ext, ReasonNone},
		{"a port no rule accepts", udp(client, server, 5000, 7003, 10), ext, int_, ReasonRule},
		{"the server opening a flow", udp(server, client, 7001, 5001, 10), int_, ext, ReasonRule},
		{"TCP mid-flow without state", tcp(client, server, 4000, 80, tcpACK), ext, int_, ReasonNoState},
		{"TCP SYN", tcp(client, server, 4000, 80, tcpSYN), ext, int_, ReasonNone},
		{"TCP ACK of the tracked flow", tcp(client, server, 4000, 80, tcpACK), ext, int_, ReasonNone},
		{"link-local source (the router's spoofed probe)", udp(netip.MustParseAddr("169.254.0.1"), server, 9, 9, 0), ext, int_, ReasonSpoofMartian},
		{"source of the other subnet", udp(server, server, 5000, 7001, 0), ext, int_, ReasonSpoofSubnet},
		{"port unreachable about the tracked flow", icmpError(server, client, 3, 3, req), int_, ext, ReasonNone},
		{"port unreachable about nothing", icmpError(server, client, 3, 3, udp(client, server, 5009, 7001, 0)), int_, ext, ReasonRelated},
		{"echo request", echo(client, server, 8, 7), ext, int_, ReasonNone},
		{"a later fragment before its first", fragment(big, 24, 16), ext, int_, ReasonFragment},
		{"first fragment", fragment(big, 0, 24), ext, int_, ReasonNone},
		{"a later fragment after its first", fragment(big, 24, 16), ext, int_, ReasonNone},
		{"a new flow with the table full", udp(client, server, 5001, 7001, 10), ext, int_, ReasonTableFull},
	}
	for i, s := range steps {
		now := int64(i+1) * sec
		before, flows := f.Stats(), len(f.Flows(now, 0))
		got := f.Check(s.ip, s.in, s.out, now)
		if after := f.Stats(); after != before || len(f.Flows(now, 0)) != flows {
			t.Errorf("%s: Check changed the filter: stats %+v → %+v", s.name, before, after)
		}
		r := f.Forward(s.ip, s.in, s.out, now)
		if r != s.want {
			t.Errorf("%s: Forward = %v, want %v", s.name, r, s.want)
		}
		if got != (r == ReasonNone) {
			t.Errorf("%s: Check = %v, Forward = %v", s.name, got, r)
		}
	}
	if n := testing.AllocsPerRun(100, func() { f.Check(req, ext, int_, sec) }); n != 0 {
		t.Errorf("Check allocates %v times per packet, want 0", n)
	}
}
