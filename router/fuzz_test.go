package router

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// FuzzARPPacket checks that the ARP decoder never panics and that what it
// accepts re-encodes to the same 28 bytes.
func FuzzARPPacket(f *testing.F) {
	// A request from 203.0.113.10 (02:00:00:00:10:10) for 203.0.113.91.
	f.Add(arpFrame(broadcastMAC, clientMAC, arpPacket{Op: arpRequest, SenderMAC: clientMAC, SenderIP: clientIP, TargetIP: vipExt})[ethHdrLen:])
	// A reply form gratuitous ARP.
	f.Add(arpFrame(broadcastMAC, extMAC, arpPacket{Op: arpReply, SenderMAC: extMAC, SenderIP: vipExt, TargetMAC: extMAC, TargetIP: vipExt})[ethHdrLen:])
	f.Add([]byte{0, 1, 8, 0, 6, 4}) // truncated header
	f.Fuzz(func(t *testing.T, b []byte) {
		var a arpPacket
		err := a.UnmarshalBinary(b)
		if len(b) < arpLen {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("short input %d bytes: err %v, want io.ErrUnexpectedEOF", len(b), err)
			}
			return
		}
		if err != nil {
			return
		}
		out, _ := a.MarshalBinary()
		if !bytes.Equal(out, b[:arpLen]) {
			t.Fatalf("round trip\n in %x\nout %x", b[:arpLen], out)
		}
	})
}

// FuzzParseIPv4 checks the IPv4 header validator: no panic, and what it
// accepts is self-consistent.
func FuzzParseIPv4(f *testing.F) {
	f.Add(ipFrame(extMAC, clientMAC, clientIP, serverIP, 64, protoUDP, make([]byte, 8))[ethHdrLen:])
	f.Add([]byte{0x46, 0, 0, 24, 0, 0, 0, 0, 1, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1, 1, 0}) // IHL 6 with an option, bad checksum
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, r := parseIPv4(b)
		if r != DropNone {
			return
		}
		if h.hdrLen < 20 || h.totalLen < h.hdrLen || h.totalLen > len(b) {
			t.Fatalf("accepted inconsistent header %+v for %d bytes", h, len(b))
		}
		if checksum(b[:h.hdrLen], 0) != 0 {
			t.Fatalf("accepted a bad checksum")
		}
	})
}

// FuzzDecideFrame runs whole received frames through the decisions and the
// in-place actions: nothing may panic, a forwarded frame keeps a valid
// header checksum with the TTL one lower, and generated replies are valid.
func FuzzDecideFrame(f *testing.F) {
	f.Add(ipFrame(extMAC, clientMAC, clientIP, serverIP, 64, protoUDP, make([]byte, 8)), false)
	f.Add(ipFrame(extMAC, clientMAC, clientIP, vipExt, 64, protoICMP, echoRequest(1, 2, []byte("x"))), false)
	f.Add(ipFrame(extMAC, clientMAC, clientIP, serverIP, 1, protoTCP, make([]byte, 20)), false)
	f.Add(arpFrame(broadcastMAC, clientMAC, arpPacket{Op: arpRequest, SenderMAC: clientMAC, SenderIP: clientIP, TargetIP: vipExt}), false)
	f.Fuzz(func(t *testing.T, frame []byte, gso bool) {
		p := testPlane(t)
		owned := testOwned(vipExt, vipInt)
		if len(frame) < ethHdrLen {
			return
		}
		switch ethType(frame) {
		case ethTypeARP:
			a, d := decideARP(frame, &p.links[0], owned)
			if d.answer {
				out := make([]byte, minFrame)
				putARPReply(out, &p.links[0], &a)
			}
		case ethTypeIPv4:
			d := p.decideIPv4(frame, 0, owned, gso)
			switch d.action {
			case ipForward:
				ttl := frame[ethHdrLen+8]
				rewriteForward(frame, p.links[d.out].mac, otherMAC)
				ip := frame[ethHdrLen:]
				if ip[8] != ttl-1 || checksum(ip[:d.hdr.hdrLen], 0) != 0 {
					t.Fatalf("forwarded header invalid: ttl %d→%d", ttl, ip[8])
				}
			case ipEcho:
				n := answerEcho(frame, &p.links[0], d.hdr)
				if checksum(frame[ethHdrLen:ethHdrLen+d.hdr.hdrLen], 0) != 0 || checksum(frame[ethHdrLen+d.hdr.hdrLen:n], 0) != 0 {
					t.Fatal("echo reply checksum invalid")
				}
			case ipICMPError:
				out := make([]byte, icmpErrorFrameMax)
				n := putICMPError(out, &p.links[0], clientMAC, frame[ethHdrLen:], d.hdr, d.icmpType, d.icmpCode, d.mtu)
				if n > len(out) || checksum(out[ethHdrLen+20:n], 0) != 0 {
					t.Fatal("ICMP error invalid")
				}
				if got := binary.BigEndian.Uint16(out[ethHdrLen+2:]); int(got) != n-ethHdrLen {
					t.Fatalf("ICMP error length field %d, frame %d", got, n-ethHdrLen)
				}
			}
		}
		_ = p.decideLocalOut(frame[ethHdrLen:], gso)
	})
}

// FuzzVnetHeader runs arbitrary virtio-net headers (as the kernel hands them
// over with a frame) through the header helpers: no panic, and moving a
// header to the TUN offsets and back restores it when nothing was clamped
// (a hdr_len that becomes 0 means "no hint" to the kernel and stays 0).
func FuzzVnetHeader(f *testing.F) {
	f.Add([]byte{1, 1, 66, 0, 0xa8, 5, 34, 0, 16, 0}) // NEEDS_CSUM, TCPv4 GSO: hdr_len 66, gso_size 1448, csum_start 34, csum_offset 16
	f.Add(make([]byte, vnetHdrLen))
	f.Fuzz(func(t *testing.T, h []byte) {
		if len(h) < vnetHdrLen {
			return
		}
		h = h[:vnetHdrLen]
		orig := append([]byte(nil), h...)
		_ = vnetIsGSO(h)
		vnetForTx(h)
		if h[vnetOffFlags]&vnetFlagDataValid != 0 {
			t.Fatal("DATA_VALID survived vnetForTx")
		}
		before := append([]byte(nil), h...)
		cs := binary.LittleEndian.Uint16(h[vnetOffCsumStart:])
		hl := binary.LittleEndian.Uint16(h[vnetOffHdrLen:])
		vnetShift(h, -ethHdrLen)
		vnetShift(h, ethHdrLen)
		if (h[vnetOffFlags]&vnetFlagNeedsCsum == 0 || cs >= ethHdrLen) && (hl == 0 || hl > ethHdrLen) && !bytes.Equal(h, before) {
			t.Fatalf("shift round trip %x → %x (from %x)", before, h, orig)
		}
	})
}
