package router

import (
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
)

// TestCaptureFilter runs the BPF program in the x/net/bpf VM over the frames
// the router must and must not see.
func TestCaptureFilter(t *testing.T) {
	extPrimary, intPrimary := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("198.51.100.1")
	raw, err := captureFilter(extMAC, []netip.Addr{extPrimary, intPrimary})
	if err != nil {
		t.Fatal(err)
	}
	prog := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		prog[i] = r.Disassemble()
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	req := arpPacket{Op: arpRequest, SenderMAC: clientMAC, SenderIP: clientIP, TargetIP: vipExt}
	tests := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"broadcast ARP", arpFrame(broadcastMAC, clientMAC, req), true},
		{"ARP to our MAC", arpFrame(extMAC, clientMAC, req), true},
		{"ARP to another MAC", arpFrame(otherMAC, clientMAC, req), false},
		{"IPv4 to our MAC", ipFrame(extMAC, clientMAC, clientIP, serverIP, 64, protoUDP, make([]byte, 8)), true},
		{"IPv4 to a VIP", ipFrame(extMAC, clientMAC, clientIP, netip.MustParseAddr("203.0.113.91"), 64, protoUDP, make([]byte, 8)), true},
		{"IPv4 to our primary (a ring datagram)", ipFrame(extMAC, clientMAC, clientIP, extPrimary, 64, protoUDP, make([]byte, 8)), false},
		{"IPv4 to our other subnet's primary", ipFrame(extMAC, clientMAC, clientIP, intPrimary, 64, protoUDP, make([]byte, 8)), false},
		{"ARP for our primary (the router learns from it)", arpFrame(broadcastMAC, clientMAC, arpPacket{Op: arpRequest, SenderMAC: clientMAC, SenderIP: clientIP, TargetIP: extPrimary}), true},
		{"IPv4 to another MAC", ipFrame(otherMAC, clientMAC, clientIP, serverIP, 64, protoUDP, make([]byte, 8)), false},
		{"IPv4 broadcast", ipFrame(broadcastMAC, clientMAC, clientIP, serverIP, 64, protoUDP, make([]byte, 8)), false},
		{"IPv6 to our MAC", func() []byte {
			f := ipFrame(extMAC, clientMAC, clientIP, serverIP, 64, protoUDP, make([]byte, 8))
			f[12], f[13] = 0x86, 0xdd
			return f
		}(), false},
	}
	for _, tc := range tests {
		n, err := vm.Run(tc.frame)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := n > 0; got != tc.want {
			t.Errorf("%s: accepted %v, want %v", tc.name, got, tc.want)
		}
	}
}
