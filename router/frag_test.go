package router

import (
	"encoding/binary"
	"testing"
)

// TestFragmentOptions: the first fragment keeps every option, later ones
// only those with the copied flag (RFC 791 3.1), padded to 4 bytes; the
// fragments' data reassembles to the original and every header is valid.
func TestFragmentOptions(t *testing.T) {
	// Options: record route (7, not copied, 7 bytes), NOP, stream id
	// (0x88, copied, 4 bytes) = 12 bytes.
	opts := []byte{7, 7, 4, 0, 0, 0, 0, 1, 0x88, 4, 0xab, 0xcd}
	payload := make([]byte, 1000)
	for i := range payload {
		payload[i] = byte(i)
	}
	ip := make([]byte, 32+len(payload))
	ip[0] = 0x40 | 32/4
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(ip)))
	binary.BigEndian.PutUint16(ip[6:8], 0x2000|10) // itself a fragment at offset 80 bytes, MF
	ip[8], ip[9] = 64, protoUDP
	copy(ip[12:20], []byte{203, 0, 113, 10, 198, 51, 100, 10})
	copy(ip[20:32], opts)
	copy(ip[32:], payload)
	setIPv4Checksum(ip[:32])
	h, r := parseIPv4(ip)
	if r != DropNone {
		t.Fatal(r)
	}
	var later [40]byte
	no, ok := copiedOptions(later[:], ip, h)
	if !ok || no != 4 || string(later[:4]) != "\x88\x04\xab\xcd" {
		t.Fatalf("copied options %x (%v), want 8804abcd", later[:no], ok)
	}
	first, rest, ok := fragSizes(h, no, 300)
	if !ok || first != 264 || rest != 272 {
		t.Fatalf("data per fragment %d, %d; want 264 (300−32 rounded down to 8), 272 (300−24)", first, rest)
	}
	var got []byte
	out := make([]byte, 300)
	for off := 0; off < len(payload); {
		n := min(rest, len(payload)-off)
		if off == 0 {
			n = first
		}
		m := putFragment(out, ip, h, later[:no], off, n)
		fh, r := parseIPv4(out[:m])
		if r != DropNone || m > 300 {
			t.Fatalf("fragment at %d: %v, %d bytes", off, r, m)
		}
		wantHdr := 24
		if off == 0 {
			wantHdr = 32
			if string(out[20:32]) != string(opts) {
				t.Fatalf("first fragment options %x, want all %x", out[20:32], opts)
			}
		}
		// Every fragment has MF: the original had it too.
		if fh.hdrLen != wantHdr || !fh.moreFrag || int(fh.fragOff) != 10+off/8 || fh.ttl != 64 {
			t.Fatalf("fragment at %d: header %d, MF %v, offset %d; want %d, true, %d", off, fh.hdrLen, fh.moreFrag, fh.fragOff, wantHdr, 10+off/8)
		}
		got = append(got, out[fh.hdrLen:m]...)
		off += n
	}
	if string(got) != string(payload) {
		t.Fatal("fragments' data differ from the original payload")
	}
	bad := append([]byte(nil), ip...)
	bad[21] = 40 // option longer than the header
	if _, ok := copiedOptions(later[:], bad, h); ok {
		t.Fatal("malformed options accepted")
	}
}

// TestVnetCompleteCsum: a partial UDP checksum (pseudo-header sum in the
// field, as CHECKSUM_PARTIAL hands it over) is completed to the full one.
func TestVnetCompleteCsum(t *testing.T) {
	f := ipFrame(intMAC, extMAC, clientIP, serverIP, 64, protoUDP, make([]byte, 8+100))
	udp := f[ethHdrLen+ipv4MinHdr:]
	binary.BigEndian.PutUint16(udp[0:2], 40000)
	binary.BigEndian.PutUint16(udp[2:4], 7)
	binary.BigEndian.PutUint16(udp[4:6], uint16(len(udp)))
	for i := 8; i < len(udp); i++ {
		udp[i] = byte(i * 3)
	}
	pseudo := sum16(f[ethHdrLen+12:ethHdrLen+20], uint32(protoUDP)+uint32(len(udp)))
	want := checksum(udp, pseudo)
	binary.BigEndian.PutUint16(udp[6:8], fold(pseudo))
	h := make([]byte, vnetHdrLen)
	h[vnetOffFlags] = vnetFlagNeedsCsum
	binary.LittleEndian.PutUint16(h[vnetOffCsumStart:], ethHdrLen+ipv4MinHdr)
	binary.LittleEndian.PutUint16(h[vnetOffCsumOffset:], 6)
	if !vnetCompleteCsum(h, f, protoUDP) || binary.BigEndian.Uint16(udp[6:8]) != want || h[vnetOffFlags] != 0 {
		t.Fatalf("checksum %#x flags %d, want %#x and NEEDS_CSUM cleared", binary.BigEndian.Uint16(udp[6:8]), h[vnetOffFlags], want)
	}
}

// TestFragmentDoesNotAllocate pins forwarding a packet that must be
// fragmented (3000 bytes without DF at MTU 1500) at zero allocations.
func TestFragmentDoesNotAllocate(t *testing.T) {
	r, owned := testRouter(t)
	w := r.newWorker(0, nil, r.shards[0])
	frame := ipFrame(extMAC, clientMAC, clientIP, serverIP, 64, protoUDP, make([]byte, 3000-ipv4MinHdr))
	frame[ethHdrLen+6] = 0 // no DF
	setIPv4Checksum(frame[ethHdrLen : ethHdrLen+ipv4MinHdr])
	buf := make([]byte, vnetHdrLen+len(frame))
	out := r.links[1].dev.(*testLink)
	before := out.written.Load()
	allocs := testing.AllocsPerRun(500, func() {
		copy(buf[vnetHdrLen:], frame)
		w.handle(buf, r.now(), owned)
		w.flush()
	})
	if allocs != 0 {
		t.Fatalf("fragmenting allocates %.1f times per packet, want 0", allocs)
	}
	if got := out.written.Load() - before; got != 3*501 {
		t.Fatalf("%d fragments written for 501 packets, want 3 each", got)
	}
	if f := out.lastFrame(); ethDst(f) != otherMAC || f[ethHdrLen+8] != 63 || checksum(f[ethHdrLen:ethHdrLen+ipv4MinHdr], 0) != 0 {
		t.Fatalf("last fragment %x: want to %v, TTL 63, valid header checksum", f[:ethHdrLen+ipv4MinHdr], otherMAC)
	}
}
