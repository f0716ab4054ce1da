package forward

import (
	"testing"
)

// FuzzForward: the verdict functions never panic on any bytes, always
// return a known reason, and a packet they pass parses.
func FuzzForward(f *testing.F) {
	f.Add(tcp(client, server, 40000, 80, tcpSYN), uint8(0))                              // an accepted SYN
	f.Add(udp(client, server, 5000, 7000, 4), uint8(0))                                  // an accepted datagram
	f.Add(icmpError(server, client, 3, 3, udp(client, server, 5000, 7000, 0)), uint8(1)) // related ICMP
	f.Add(fragment(udp(client, server, 5000, 7000, 3000), 1480, 1480), uint8(0))         // a non-first fragment
	f.Add([]byte{0x45, 0, 0, 20}, uint8(0))                                              // truncated
	flt, err := New(labConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte, in uint8) {
		link := int(in % 3) // 2 is not a link: must not matter
		r := flt.Forward(b, link, 1-link%2, 0)
		if r >= numReasons {
			t.Fatalf("unknown reason %d", r)
		}
		var p packet
		if r == ReasonNone && !parse(b, &p) {
			t.Fatalf("passed a packet that does not parse: % x", b)
		}
		if r := flt.Local(b, link, 0); r >= numReasons {
			t.Fatalf("unknown local reason %d", r)
		}
	})
}
