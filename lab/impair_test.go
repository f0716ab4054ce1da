package lab

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// TestImpair: a relay that drops everything in one direction cuts that
// direction only as far as a round trip is concerned, a delay shows in the
// round trip, and Unimpair restores the path. The client sends with veth
// defaults (partial UDP checksums), so the echoes prove the relay fixes them.
func TestImpair(t *testing.T) {
	l := testLab(t, Spec{Nodes: 2})
	if err := udpExchange(l, l.Client(), NodeExt(1)); err != nil {
		t.Fatalf("before: %v", err)
	}
	// A relay that passes everything: the node still answers (checksums
	// fixed on the way).
	if err := l.Impair(1, "ext", nil, nil, 1); err != nil {
		t.Fatal(err)
	}
	if err := udpExchange(l, l.Client(), NodeExt(1)); err != nil {
		t.Errorf("through a relay that impairs nothing: %v", err)
	}
	if err := l.Impair(1, "ext", nil, nil, 1); err == nil {
		t.Error("a second Impair of the same path succeeded")
	}
	if err := l.Unimpair(1, "ext"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name             string
		toNode, fromNode *Impairment
	}{
		{"deaf", &Impairment{Loss: 1}, nil},
		{"mute", nil, &Impairment{Loss: 1}},
	} {
		if err := l.Impair(1, "ext", tc.toNode, tc.fromNode, 1); err != nil {
			t.Fatal(err)
		}
		if err := udpExchange(l, l.Client(), NodeExt(1)); err == nil {
			t.Errorf("%s: an echo crossed a path cut one way", tc.name)
		}
		// The other path and the other node are untouched.
		if err := udpExchange(l, l.Node(2), NodeInt(1)); err != nil {
			t.Errorf("%s: n2 -> n1 int0: %v", tc.name, err)
		}
		if err := l.Unimpair(1, "ext"); err != nil {
			t.Fatal(err)
		}
		if err := udpExchange(l, l.Client(), NodeExt(1)); err != nil {
			t.Errorf("%s: after Unimpair: %v", tc.name, err)
		}
	}
	const delay = 80 * time.Millisecond
	if err := l.Impair(1, "ext", &Impairment{Delay: delay}, nil, 1); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := udpExchange(l, l.Node(2), NodeExt(1)); err != nil {
		t.Errorf("delayed path: %v", err)
	}
	if rtt := time.Since(start); rtt < delay {
		t.Errorf("round trip over a path delayed %v took %v", delay, rtt)
	}
	if err := l.Unimpair(1, "ext"); err != nil {
		t.Fatal(err)
	}
	if err := l.Unimpair(1, "ext"); err != nil {
		t.Errorf("a second Unimpair: %v", err)
	}
	// Close removes a relay left in place.
	if err := l.Impair(2, "int", &Impairment{Loss: 0.5, Duplicate: 0.5}, nil, 1); err != nil {
		t.Fatal(err)
	}
}

// TestPartition: nodes in different groups cannot reach each other, nodes
// in one group can, group 0 keeps the client, and Unpartition heals it.
func TestPartition(t *testing.T) {
	l := testLab(t, Spec{Nodes: 3})
	if err := l.Partition([]int{1}, []int{2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := udpExchange(l, l.Client(), NodeExt(1)); err != nil {
		t.Errorf("client -> n1 (same group): %v", err)
	}
	if err := udpExchange(l, l.Node(2), NodeInt(3)); err != nil {
		t.Errorf("n2 -> n3 (same group): %v", err)
	}
	if err := udpExchange(l, l.Client(), NodeExt(2)); err == nil {
		t.Error("client reached n2 across the partition")
	}
	if err := udpExchange(l, l.Node(3), NodeInt(1)); err == nil {
		t.Error("n3 reached n1 across the partition")
	}
	if err := l.Partition([]int{1, 1}); err == nil {
		t.Error("a node in two groups was accepted")
	}
	if err := l.Unpartition(); err != nil {
		t.Fatal(err)
	}
	if err := udpExchange(l, l.Client(), NodeExt(2)); err != nil {
		t.Errorf("client -> n2 after Unpartition: %v", err)
	}
	if err := udpExchange(l, l.Node(3), NodeInt(1)); err != nil {
		t.Errorf("n3 -> n1 after Unpartition: %v", err)
	}
}

// TestPlacementComposes: Cut, Heal, Partition and Impair move the same
// switch ports, and each leaves the others' effect in place: a cut
// partitioned node heals into its own group, cutting an impaired node cuts
// its relay's side too, and a node partitioned while impaired keeps its
// relay.
func TestPlacementComposes(t *testing.T) {
	l := testLab(t, Spec{Nodes: 3})
	if err := l.Partition([]int{1}, []int{2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := l.Cut(2); err != nil {
		t.Fatal(err)
	}
	if err := udpExchange(l, l.Node(3), NodeInt(2)); err == nil {
		t.Error("n3 reached the cut n2")
	}
	if err := l.Heal(2); err != nil {
		t.Fatal(err)
	}
	if err := healedExchange(l, l.Node(3), NodeInt(2)); err != nil {
		t.Errorf("n3 -> n2 after Heal (same group): %v", err)
	}
	if err := udpExchange(l, l.Client(), NodeExt(2)); err == nil {
		t.Error("Heal put the partitioned n2 back with the client")
	}
	if err := l.Unpartition(); err != nil {
		t.Fatal(err)
	}

	// A relay that passes everything, then Cut: nothing crosses; Heal:
	// frames cross the relay again.
	if err := l.Impair(1, "ext", nil, nil, 1); err != nil {
		t.Fatal(err)
	}
	if err := l.Cut(1); err != nil {
		t.Fatal(err)
	}
	if err := udpExchange(l, l.Client(), NodeExt(1)); err == nil {
		t.Error("the client reached the cut, impaired n1 (through its relay)")
	}
	if err := l.Heal(1); err != nil {
		t.Fatal(err)
	}
	if err := healedExchange(l, l.Client(), NodeExt(1)); err != nil {
		t.Errorf("client -> n1 after Heal, through its relay: %v", err)
	}

	// Partitioned while impaired: the relay moves with the node.
	if err := l.Unimpair(1, "ext"); err != nil {
		t.Fatal(err)
	}
	if err := l.Impair(1, "ext", &Impairment{Loss: 1}, nil, 1); err != nil {
		t.Fatal(err)
	}
	if err := l.Partition([]int{2}, []int{1, 3}); err != nil {
		t.Fatal(err)
	}
	if err := udpExchange(l, l.Node(3), NodeExt(1)); err == nil {
		t.Error("n3 reached n1's deaf ext side after the partition")
	}
	if err := l.Unimpair(1, "ext"); err != nil {
		t.Fatal(err)
	}
	if err := healedExchange(l, l.Node(3), NodeExt(1)); err != nil {
		t.Errorf("n3 -> n1 (same group) after Unimpair: %v", err)
	}
	if err := udpExchange(l, l.Client(), NodeExt(1)); err == nil {
		t.Error("Unimpair put the partitioned n1 back with the client")
	}
}

// healedExchange is udpExchange retried for a few seconds: after a heal,
// the sender's ARP entry for the node may still be in its failed
// resolution from the cut (the kernel's next probe comes up to 1 s later).
func healedExchange(l *Lab, from string, to netip.Addr) error {
	var err error
	for range 4 {
		if err = udpExchange(l, from, to); err == nil {
			return nil
		}
	}
	return err
}

func TestFixChecksum(t *testing.T) {
	// An Ethernet + IPv4 + UDP frame 10.0.0.1:1000 -> 10.0.0.2:2000,
	// payload "hi", with a garbage (partial) checksum.
	f := make([]byte, 14+20+8+2)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 30)
	ip[8], ip[9] = 64, 17
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	u := ip[20:]
	binary.BigEndian.PutUint16(u[0:], 1000)
	binary.BigEndian.PutUint16(u[2:], 2000)
	binary.BigEndian.PutUint16(u[4:], 10)
	binary.BigEndian.PutUint16(u[6:], 0x1234)
	copy(u[8:], "hi")
	fixChecksum(f)
	// Worked by hand: pseudo-header 0a00+0001+0a00+0002+0011+000a =
	// 0x141e, UDP 03e8+07d0+000a+0000+6869 = 0x742b, sum 0x8849 (no
	// carry), complement 0x77b6.
	if got := binary.BigEndian.Uint16(u[6:]); got != 0x77b6 {
		t.Errorf("UDP checksum = %#04x, want 0x77b6", got)
	}
	// A fragment is left alone.
	binary.BigEndian.PutUint16(ip[6:], 0x2000)
	binary.BigEndian.PutUint16(u[6:], 0x1234)
	fixChecksum(f)
	if got := binary.BigEndian.Uint16(u[6:]); got != 0x1234 {
		t.Errorf("a fragment's checksum changed to %#04x", got)
	}
}
