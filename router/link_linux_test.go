package router

import (
	"testing"

	"golang.org/x/net/bpf"
)

// TestCaptureFilter runs the BPF program in the x/net/bpf VM over the frames
// the router must and must not see.
func TestCaptureFilter(t *testing.T) {
	raw, err := captureFilter(extMAC)
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
