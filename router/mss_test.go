package router

import (
	"encoding/binary"
	"testing"
)

// tcpSYN returns an IPv4 TCP segment with flags and the given options,
// checksums complete.
func tcpSYN(flags uint8, opts []byte) []byte {
	ip := make([]byte, 20+20+len(opts))
	ip[0], ip[8], ip[9] = 0x45, 64, protoTCP
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	copy(ip[12:], []byte{203, 0, 113, 10, 198, 51, 100, 10})
	setIPv4Checksum(ip)
	t := ip[20:]
	binary.BigEndian.PutUint16(t[0:], 40000)
	binary.BigEndian.PutUint16(t[2:], 80)
	binary.BigEndian.PutUint32(t[4:], 12345)
	t[12] = byte((20+len(opts))/4) << 4
	t[13] = flags
	binary.BigEndian.PutUint16(t[14:], 64240)
	copy(t[20:], opts)
	setTCPChecksum(ip)
	return ip
}

func setTCPChecksum(ip []byte) {
	t := ip[20:]
	t[16], t[17] = 0, 0
	binary.BigEndian.PutUint16(t[16:], checksum(t, sum16(ip[12:20], uint32(protoTCP)+uint32(len(t)))))
}

func tcpChecksumOK(ip []byte) bool {
	t := ip[20:]
	return checksum(t, sum16(ip[12:20], uint32(protoTCP)+uint32(len(t)))) == 0
}

func mssOf(ip []byte) uint16 {
	o := ip[40:]
	for i := 0; i+3 < len(o); {
		switch o[i] {
		case 0:
			return 0
		case 1:
			i++
			continue
		}
		if o[i] == 2 {
			return binary.BigEndian.Uint16(o[i+2:])
		}
		i += max(int(o[i+1]), 1)
	}
	return 0
}

// TestClampMSS: the MSS of a SYN or SYN-ACK larger than the limit is
// lowered, with the TCP checksum still right (or left alone when the
// device completes it); anything else is left as it was.
func TestClampMSS(t *testing.T) {
	const limit = 1384 // 1500 - 76 (tunnel) - 40
	mss := func(v uint16) []byte { return []byte{2, 4, byte(v >> 8), byte(v)} }
	linuxSYN := append(append(mss(1460), 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0), 1, 3, 3, 7) // MSS, SACK ok, timestamps, NOP, wscale
	for _, tt := range []struct {
		name    string
		ip      []byte
		partial bool
		changed bool
		wantMSS uint16
	}{
		{"SYN, MSS 1460", tcpSYN(tcpFlagSYN, linuxSYN), false, true, limit},
		{"SYN-ACK, NOPs first", tcpSYN(tcpFlagSYN|0x10, append([]byte{1, 1}, append(mss(1460), 0, 0)...)), false, true, limit},
		{"SYN, MSS below the limit", tcpSYN(tcpFlagSYN, mss(1200)), false, false, 1200},
		{"SYN, MSS at the limit", tcpSYN(tcpFlagSYN, mss(limit)), false, false, limit},
		{"SYN, partial checksum", tcpSYN(tcpFlagSYN, mss(8960)), true, true, limit},
		{"ACK with an MSS-like option", tcpSYN(0x10, mss(1460)), false, false, 1460},
		{"SYN, no MSS", tcpSYN(tcpFlagSYN, []byte{1, 1, 4, 2}), false, false, 0},
		{"SYN, option length 0", tcpSYN(tcpFlagSYN, []byte{3, 0, 2, 4, 5, 0xb4, 0, 0}), false, false, 0},
		{"SYN, option past the header", tcpSYN(tcpFlagSYN, []byte{1, 1, 2, 8}), false, false, 0},
		{"SYN, end of options before MSS", tcpSYN(tcpFlagSYN, append([]byte{0, 0, 0, 0}, mss(1460)...)), false, false, 0},
	} {
		ip := tt.ip
		sum := binary.BigEndian.Uint16(ip[36:])
		if got := clampMSS(ip, limit, tt.partial); got != tt.changed {
			t.Errorf("%s: clampMSS = %v, want %v", tt.name, got, tt.changed)
		}
		if got := mssOf(ip); tt.wantMSS != 0 && got != tt.wantMSS {
			t.Errorf("%s: MSS %d after, want %d", tt.name, got, tt.wantMSS)
		}
		switch {
		case tt.partial:
			if binary.BigEndian.Uint16(ip[36:]) != sum {
				t.Errorf("%s: checksum field changed on a partial checksum", tt.name)
			}
		case !tcpChecksumOK(ip):
			t.Errorf("%s: TCP checksum wrong after the clamp", tt.name)
		}
	}

	// A fragment (offset ≠ 0) and a truncated header are left alone.
	frag := tcpSYN(tcpFlagSYN, mss(1460))
	binary.BigEndian.PutUint16(frag[6:], 10)
	if clampMSS(frag, limit, false) || clampMSS(frag[:30], limit, false) {
		t.Error("a fragment or a truncated segment was clamped")
	}
	ip := tcpSYN(tcpFlagSYN, linuxSYN)
	if n := testing.AllocsPerRun(100, func() { clampMSS(ip, limit, false) }); n != 0 {
		t.Errorf("clampMSS allocates %v times", n)
	}
}

// FuzzClampMSS: no input panics; a clamp leaves a complete checksum
// right.
func FuzzClampMSS(f *testing.F) {
	f.Add(tcpSYN(tcpFlagSYN, []byte{2, 4, 5, 0xb4}), uint16(1384)) // SYN, MSS 1460
	f.Add(tcpSYN(tcpFlagSYN, []byte{1, 2, 0, 0}), uint16(536))     // NOP, bad option length
	f.Fuzz(func(t *testing.T, ip []byte, limit uint16) {
		ok := len(ip) >= 40 && tcpChecksumOK(ip)
		if clampMSS(ip, limit, false) && ok && binary.BigEndian.Uint16(ip[2:]) == uint16(len(ip)) && ip[0] == 0x45 && !tcpChecksumOK(ip) {
			t.Errorf("checksum broken by the clamp: % x", ip)
		}
	})
}
