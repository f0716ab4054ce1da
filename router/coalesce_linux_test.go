package router

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// tcpSeg builds the frame of one TCP segment as the tunnel worker holds it
// (room for the virtio-net and Ethernet headers, then IPv4 with DF, TCP
// with a timestamp option), with full checksums, in a slot of its own.
func tcpSeg(t *testing.T, id uint16, seq uint32, flags byte, payload []byte, tsval uint32) []byte {
	t.Helper()
	const hl = 20 + 32
	ip := make([]byte, hl+len(payload))
	ip[0], ip[1] = 0x45, 0x02 // ECT(0)
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	binary.BigEndian.PutUint16(ip[4:], id)
	binary.BigEndian.PutUint16(ip[6:], 0x4000)
	ip[8], ip[9] = 63, protoTCP
	copy(ip[12:], []byte{198, 51, 100, 10, 203, 0, 113, 10})
	setIPv4Checksum(ip)
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], 5201)
	binary.BigEndian.PutUint16(tcp[2:], 40000)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], 777)
	tcp[12], tcp[13] = 8<<4, flags
	binary.BigEndian.PutUint16(tcp[14:], 501)
	copy(tcp[20:], []byte{1, 1, 8, 10})
	binary.BigEndian.PutUint32(tcp[24:], tsval)
	binary.BigEndian.PutUint32(tcp[28:], 99)
	copy(tcp[32:], payload)
	pseudo := sum16(ip[12:20], uint32(protoTCP)+uint32(len(tcp)))
	binary.BigEndian.PutUint16(tcp[16:], checksum(tcp, pseudo))
	slot := make([]byte, tunnelOffset+len(ip), slotSize)
	copy(slot[tunnelOffset:], ip)
	return slot
}

var runHop = netip.MustParseAddr("203.0.113.10")

// Four full segments and a short one with PSH make one super-frame that
// the kernel's segmentation (segmentTCP does what tcp_gso_segment does)
// turns back into the same five packets; its partial checksum completes
// to the super-packet's correct one.
func TestTCPRunRoundTrip(t *testing.T) {
	const mss = 1000
	var segs [][]byte
	seq := uint32(1 << 31)
	for i := range 5 {
		n, flags := mss, byte(tcpFlagACK)
		if i == 4 {
			n, flags = 300, tcpFlagACK|tcpFlagPSH
		}
		segs = append(segs, tcpSeg(t, uint16(0xfffe+i), seq, flags, bytes.Repeat([]byte{byte('a' + i)}, n), 5))
		seq += uint32(n)
	}
	var want [][]byte // the run grows the first segment's slot in place
	for _, f := range segs {
		want = append(want, bytes.Clone(f[tunnelOffset:]))
	}
	var r tcpRun
	for i, f := range segs {
		ihl, hl, payload, ok := tcpMerge(f[tunnelOffset:])
		if !ok {
			t.Fatalf("segment %d: not mergeable", i)
		}
		if i == 0 {
			if !r.start(f, 1, runHop, ihl, hl, payload) {
				t.Fatal("the first segment opened no run")
			}
			continue
		}
		added, ended := r.add(f[tunnelOffset:], 1, runHop, hl, payload)
		if !added || ended != (i == 4) {
			t.Fatalf("segment %d: added %v ended %v", i, added, ended)
		}
	}
	frame, ok := r.finish(1500)
	if !ok || r.open() {
		t.Fatalf("finish: ok %v, still open %v", ok, r.open())
	}
	h, ip := frame[:vnetHdrLen], frame[tunnelOffset:]
	if h[vnetOffFlags] != vnetFlagNeedsCsum || h[vnetOffGSOType] != vnetGSOTCPv4 || binary.LittleEndian.Uint16(h[vnetOffGSOSize:]) != mss ||
		binary.LittleEndian.Uint16(h[vnetOffHdrLen:]) != ethHdrLen+52 || binary.LittleEndian.Uint16(h[vnetOffCsumStart:]) != ethHdrLen+20 {
		t.Errorf("virtio-net header %x", h)
	}
	if got := int(binary.BigEndian.Uint16(ip[2:])); got != 52+4*mss+300 || got != len(ip) {
		t.Errorf("total length %d, frame holds %d", got, len(ip))
	}
	if checksum(ip[:20], 0) != 0 {
		t.Error("the super-packet's IP checksum is wrong")
	}
	// The device completes the partial checksum: the sum of the TCP bytes
	// (check field holding the pseudo-header's sum), complemented.
	full := bytes.Clone(ip)
	tcp := full[20:]
	binary.BigEndian.PutUint16(tcp[16:], ^fold(sum16(tcp, 0)))
	if checksum(tcp, sum16(full[12:20], uint32(protoTCP)+uint32(len(tcp)))) != 0 {
		t.Error("the partial checksum does not complete to the super-packet's checksum")
	}
	var back [][]byte
	if !segmentTCP(ip, mss, make([]byte, 2000), func(s []byte) { back = append(back, bytes.Clone(s)) }) {
		t.Fatal("segmentTCP refused the super-packet")
	}
	if len(back) != len(segs) {
		t.Fatalf("segmented into %d packets, want %d", len(back), len(segs))
	}
	for i := range want {
		if !bytes.Equal(back[i], want[i]) {
			t.Errorf("segment %d differs after the round trip:\n got %x\nwant %x", i, back[i][:60], want[i][:60])
		}
	}
}

// What cannot be cut back into the same packets never joins a run.
func TestTCPRunRefuses(t *testing.T) {
	const mss = 1000
	pay := bytes.Repeat([]byte{'x'}, mss)
	first := func() *tcpRun {
		f := tcpSeg(t, 10, 1000, tcpFlagACK, pay, 5)
		ihl, hl, n, _ := tcpMerge(f[tunnelOffset:])
		r := &tcpRun{}
		if !r.start(f, 1, runHop, ihl, hl, n) {
			t.Fatal("no run")
		}
		return r
	}
	next := func(mod func(ip []byte)) []byte {
		f := tcpSeg(t, 11, 2000, tcpFlagACK, pay, 5)
		ip := f[tunnelOffset:]
		mod(ip)
		return ip
	}
	for name, c := range map[string]struct {
		ip  []byte
		out int
	}{
		"a gap in the sequence": {next(func(ip []byte) { binary.BigEndian.PutUint32(ip[24:], 2001) }), 1},
		"a gap in the IP ids":   {next(func(ip []byte) { binary.BigEndian.PutUint16(ip[4:], 12) }), 1},
		"another flow":          {next(func(ip []byte) { ip[19]++ }), 1},
		"another ack":           {next(func(ip []byte) { ip[31]++ }), 1},
		"another window":        {next(func(ip []byte) { ip[35]++ }), 1},
		"another timestamp":     {next(func(ip []byte) { ip[47]++ }), 1},
		"another TOS":           {next(func(ip []byte) { ip[1] = 0x03 }), 1},
		"another link":          {next(func(ip []byte) {}), 0},
		"longer than the first": {tcpSeg(t, 11, 2000, tcpFlagACK, append(bytes.Clone(pay), 'y'), 5)[tunnelOffset:], 1},
	} {
		r := first()
		_, hl, n, ok := tcpMerge(c.ip)
		if !ok {
			t.Fatalf("%s: the segment itself is not mergeable", name)
		}
		if added, _ := r.add(c.ip, c.out, runHop, hl, n); added {
			t.Errorf("%s: added to the run", name)
		}
		if r.n != 1 || len(r.frame) != tunnelOffset+52+mss {
			t.Errorf("%s: the run changed (%d segments, %d bytes)", name, r.n, len(r.frame))
		}
	}
	for name, f := range map[string][]byte{
		"FIN":        tcpSeg(t, 11, 2000, tcpFlagACK|tcpFlagFIN, pay, 5),
		"SYN":        tcpSeg(t, 11, 2000, 0x02, nil, 5),
		"no payload": tcpSeg(t, 11, 2000, tcpFlagACK, nil, 5),
		"CWR":        tcpSeg(t, 11, 2000, tcpFlagACK|tcpFlagCWR, pay, 5),
	} {
		if _, _, _, ok := tcpMerge(f[tunnelOffset:]); ok {
			t.Errorf("%s: mergeable", name)
		}
	}
	f := tcpSeg(t, 11, 2000, tcpFlagACK, pay, 5)
	binary.BigEndian.PutUint16(f[tunnelOffset+6:], 0) // DF clear
	if _, _, _, ok := tcpMerge(f[tunnelOffset:]); ok {
		t.Error("a segment without DF is mergeable")
	}
	psh := tcpSeg(t, 10, 1000, tcpFlagACK|tcpFlagPSH, pay, 5)
	ihl, hl, n, _ := tcpMerge(psh[tunnelOffset:])
	var r tcpRun
	if r.start(psh, 1, runHop, ihl, hl, n) || r.open() {
		t.Error("a segment with PSH opened a run")
	}
	// A run of one is sent as it came.
	one := first()
	orig := bytes.Clone(one.frame)
	if got, ok := one.finish(1500); !ok || !bytes.Equal(got, orig) {
		t.Error("a run of one segment changed")
	}
}
