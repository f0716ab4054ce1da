package ringnet

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var testKey = bytes.Repeat([]byte{0x42}, KeyLen)

// threeNodes is a node map of three nodes on two paths.
func threeNodes() [][]netip.AddrPort {
	ap := netip.MustParseAddrPort
	return [][]netip.AddrPort{
		{ap("127.77.1.1:7000"), ap("127.77.2.1:7000")},
		{ap("127.77.1.2:7000"), ap("127.77.2.2:7000")},
		{ap("127.77.1.3:7000"), ap("127.77.2.3:7000")},
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// mustSealer returns a sealer for boot time boot, with a salt that differs
// per boot (testSalt).
func mustSealer(t testing.TB, key []byte, from NodeID, boot uint64) *sealer {
	t.Helper()
	return mustSealerSalt(t, key, from, boot, testSalt(boot))
}

func testSalt(boot uint64) uint64 { return boot * 0x9e3779b97f4a7c15 }

func mustSealerSalt(t testing.TB, key []byte, from NodeID, boot, salt uint64) *sealer {
	t.Helper()
	s, err := newSealer(key, from, boot, salt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rxSalt is the salt of the receiving node's boot in these tests (node 2's
// opener): mustSeal's datagrams echo it, so they are fresh there.
const rxSalt = 0x2222_3333_4444_5555

func mustSeal(t testing.TB, s *sealer, to NodeID, path int, payload []byte) []byte {
	t.Helper()
	return mustSealEcho(t, s, to, path, payload, rxSalt)
}

func mustSealEcho(t testing.TB, s *sealer, to NodeID, path int, payload []byte, echo uint64) []byte {
	t.Helper()
	b, err := s.seal(nil, to, path, payload, echo)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHeaderRoundTrip(t *testing.T) {
	h := Header{Version: Version, Path: 1, From: 3, To: 65535, Kind: KindAnnounce, Boot: 0x0123456789abcdef, Salt: 0xfedcba9876543210, Counter: 1<<64 - 1, Echo: 0x0f1e2d3c4b5a6978}
	b, _ := h.MarshalBinary()
	if len(b) != HeaderLen {
		t.Fatalf("len = %d, want %d", len(b), HeaderLen)
	}
	var got Header
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(h, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if err := got.UnmarshalBinary(b[:HeaderLen-1]); err != errShort {
		t.Errorf("short header: err = %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestOpen checks every verdict of the receive path on datagrams built from a
// valid one.
func TestOpen(t *testing.T) {
	nodes := threeNodes()
	src1p0 := nodes[0][0]
	payload := []byte("token payload")
	tests := []struct {
		name string
		// mk returns the datagram, path and source to open at node 2.
		mk   func(s *sealer) ([]byte, int, netip.AddrPort)
		want DropReason
	}{
		{"valid", func(s *sealer) ([]byte, int, netip.AddrPort) { return mustSeal(t, s, 2, 0, payload), 0, src1p0 }, DropNone},
		{"valid path 1", func(s *sealer) ([]byte, int, netip.AddrPort) { return mustSeal(t, s, 2, 1, payload), 1, nodes[0][1] }, DropNone},
		{"empty payload", func(s *sealer) ([]byte, int, netip.AddrPort) { return mustSeal(t, s, 2, 0, nil), 0, src1p0 }, DropNone},
		{"max payload", func(s *sealer) ([]byte, int, netip.AddrPort) {
			return mustSeal(t, s, 2, 0, make([]byte, MaxPacket)), 0, src1p0
		}, DropNone},
		{"empty", func(s *sealer) ([]byte, int, netip.AddrPort) { return nil, 0, src1p0 }, DropShort},
		{"header only", func(s *sealer) ([]byte, int, netip.AddrPort) {
			return mustSeal(t, s, 2, 0, payload)[:HeaderLen], 0, src1p0
		}, DropShort},
		{"truncated tag", func(s *sealer) ([]byte, int, netip.AddrPort) {
			b := mustSeal(t, s, 2, 0, payload)
			return b[:len(b)-1], 0, src1p0
		}, DropAuth},
		{"oversize", func(s *sealer) ([]byte, int, netip.AddrPort) {
			return append(mustSeal(t, s, 2, 0, make([]byte, MaxPacket)), 0), 0, src1p0
		}, DropOversize},
		{"version 1", func(s *sealer) ([]byte, int, netip.AddrPort) {
			b := mustSeal(t, s, 2, 0, payload)
			b[0] = 1
			return b, 0, src1p0
		}, DropVersion},
		{"reserved set", func(s *sealer) ([]byte, int, netip.AddrPort) {
			b := mustSeal(t, s, 2, 0, payload)
			b[7] = 1
			return b, 0, src1p0
		}, DropMalformed},
		{"counter zero", func(s *sealer) ([]byte, int, netip.AddrPort) {
			b := mustSeal(t, s, 2, 0, payload)
			binary.BigEndian.PutUint64(b[24:], 0)
			return b, 0, src1p0
		}, DropMalformed},
		{"arrived on other path", func(s *sealer) ([]byte, int, netip.AddrPort) { return mustSeal(t, s, 2, 0, payload), 1, nodes[0][1] }, DropWrongPath},
		{"for node 3", func(s *sealer) ([]byte, int, netip.AddrPort) { return mustSeal(t, s, 3, 0, payload), 0, src1p0 }, DropNotForUs},
		{"sender 0", func(s *sealer) ([]byte, int, netip.AddrPort) {
			b := mustSeal(t, s, 2, 0, payload)
			b[2], b[3] = 0, 0
			return b, 0, src1p0
		}, DropUnknownSender},
		{"sender 9 not in map", func(s *sealer) ([]byte, int, netip.AddrPort) {
			b := mustSeal(t, s, 2, 0, payload)
			b[2], b[3] = 0, 9
			return b, 0, src1p0
		}, DropUnknownSender},
		{"sender is receiver", func(s *sealer) ([]byte, int, netip.AddrPort) {
			b := mustSeal(t, s, 2, 0, payload)
			b[2], b[3] = 0, 2
			return b, 0, nodes[1][0]
		}, DropUnknownSender},
		{"source not the sender's address", func(s *sealer) ([]byte, int, netip.AddrPort) {
			return mustSeal(t, s, 2, 0, payload), 0, netip.MustParseAddrPort("203.0.113.9:7000")
		}, DropUnknownSender},
		{"source port differs", func(s *sealer) ([]byte, int, netip.AddrPort) {
			return mustSeal(t, s, 2, 0, payload), 0, netip.MustParseAddrPort("127.77.1.1:7001")
		}, DropUnknownSender},
		{"source as v4-in-v6", func(s *sealer) ([]byte, int, netip.AddrPort) {
			return mustSeal(t, s, 2, 0, payload), 0, netip.MustParseAddrPort("[::ffff:127.77.1.1]:7000")
		}, DropNone},
		{"payload bit flipped", func(s *sealer) ([]byte, int, netip.AddrPort) {
			b := mustSeal(t, s, 2, 0, payload)
			b[HeaderLen+3] ^= 1
			return b, 0, src1p0
		}, DropAuth},
		{"tag bit flipped", func(s *sealer) ([]byte, int, netip.AddrPort) {
			b := mustSeal(t, s, 2, 0, payload)
			b[len(b)-1] ^= 0x80
			return b, 0, src1p0
		}, DropAuth},
		{"counter changed", func(s *sealer) ([]byte, int, netip.AddrPort) {
			b := mustSeal(t, s, 2, 0, payload)
			b[31] ^= 4
			return b, 0, src1p0
		}, DropAuth},
		{"boot changed", func(s *sealer) ([]byte, int, netip.AddrPort) {
			b := mustSeal(t, s, 2, 0, payload)
			b[15] ^= 1
			return b, 0, src1p0
		}, DropAuth},
		{"other key", func(s *sealer) ([]byte, int, netip.AddrPort) {
			o := mustSealer(t, bytes.Repeat([]byte{7}, KeyLen), 1, s.boot)
			return mustSeal(t, o, 2, 0, payload), 0, src1p0
		}, DropAuth},
		{"echoes no boot", func(s *sealer) ([]byte, int, netip.AddrPort) {
			return mustSealEcho(t, s, 2, 0, payload, 0), 0, src1p0
		}, DropNotFresh},
		{"echoes an earlier boot", func(s *sealer) ([]byte, int, netip.AddrPort) {
			return mustSealEcho(t, s, 2, 0, payload, rxSalt-1), 0, src1p0
		}, DropNotFresh},
		{"echo edited", func(s *sealer) ([]byte, int, netip.AddrPort) {
			b := mustSealEcho(t, s, 2, 0, payload, rxSalt-1)
			binary.BigEndian.PutUint64(b[32:], rxSalt)
			return b, 0, src1p0
		}, DropAuth},
		{"announce", func(s *sealer) ([]byte, int, netip.AddrPort) {
			b, err := s.sealAs(nil, Header{To: 2, Kind: KindAnnounce, Counter: 9, Echo: rxSalt}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return b, 0, src1p0
		}, DropNone},
		{"announce with a payload", func(s *sealer) ([]byte, int, netip.AddrPort) {
			b := mustSeal(t, s, 2, 0, payload)
			b[6] = byte(KindAnnounce)
			return b, 0, src1p0
		}, DropMalformed},
		{"unknown kind", func(s *sealer) ([]byte, int, netip.AddrPort) {
			b := mustSeal(t, s, 2, 0, payload)
			b[6] = 2
			return b, 0, src1p0
		}, DropMalformed},
		{"salt zero", func(s *sealer) ([]byte, int, netip.AddrPort) {
			b := mustSeal(t, s, 2, 0, payload)
			binary.BigEndian.PutUint64(b[16:], 0)
			return b, 0, src1p0
		}, DropMalformed},
		{"sealed by node 3 claiming node 1", func(s *sealer) ([]byte, int, netip.AddrPort) {
			// Node 3 has the key, but node 1's per-boot key is derived from
			// the sender id in the header: relabelling fails.
			o := mustSealer(t, testKey, 3, s.boot)
			b := mustSeal(t, o, 2, 0, payload)
			b[2], b[3] = 0, 1
			return b, 0, src1p0
		}, DropAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1000, 0)}
			o := newOpener(testKey, 2, rxSalt, nodes, time.Second, 2*time.Millisecond, clk.now)
			s := mustSealer(t, testKey, 1, 77<<16)
			b, path, src := tt.mk(s)
			_, pt, _, _, got := o.open(b, path, src)
			if got != tt.want {
				t.Fatalf("verdict = %v, want %v", got, tt.want)
			}
			if got == DropNone && len(b) > Overhead && len(pt) != len(b)-Overhead {
				t.Errorf("plaintext len = %d, want %d", len(pt), len(b)-Overhead)
			}
			if got == DropNone && tt.name == "valid" && string(pt) != string(payload) {
				t.Errorf("plaintext = %q, want %q", pt, payload)
			}
		})
	}
}

func TestSealRejects(t *testing.T) {
	s := mustSealer(t, testKey, 1, 1)
	if _, err := s.seal(nil, 2, 0, make([]byte, MaxPacket+1), 0); err == nil {
		t.Error("seal of MaxPacket+1 bytes: no error")
	}
	if _, err := s.seal(nil, 2, MaxPaths, nil, 0); err == nil {
		t.Error("seal on path MaxPaths: no error")
	}
	if _, err := s.sealAs(nil, Header{To: 2, Kind: KindAnnounce, Counter: 1}, []byte("x")); err == nil {
		t.Error("announce with a payload: no error")
	}
	if _, err := newSealer(testKey[:16], 1, 1, 1); err == nil {
		t.Error("16-byte key accepted")
	}
}

// TestOpenSequence checks replays and boots across a sequence of datagrams
// from node 1 to node 2.
func TestOpenSequence(t *testing.T) {
	nodes := threeNodes()
	src := nodes[0][0]
	clk := &fakeClock{t: time.Unix(1000, 0)}
	o := newOpener(testKey, 2, rxSalt, nodes, 5*time.Second, 2*time.Millisecond, clk.now)
	open := func(b []byte) DropReason {
		t.Helper()
		_, _, _, _, r := o.open(append([]byte(nil), b...), 0, src)
		return r
	}
	openEv := func(b []byte) bootEvent {
		t.Helper()
		_, _, ev, _, r := o.open(append([]byte(nil), b...), 0, src)
		if r != DropNone {
			t.Fatalf("open: %v", r)
		}
		return ev
	}
	boot1 := mustSealer(t, testKey, 1, 1000<<16|5)
	a := mustSeal(t, boot1, 2, 0, []byte("a"))
	b := mustSeal(t, boot1, 2, 0, []byte("b"))
	c := mustSeal(t, boot1, 2, 0, []byte("c"))

	if ev := openEv(b); ev != bootFirst {
		t.Errorf("first boot seen: boot event %d, want the first", ev)
	}
	if r := open(b); r != DropReplay {
		t.Errorf("replayed b: %v, want replay", r)
	}
	if r := open(a); r != DropNone {
		t.Errorf("a after b (reordered): %v, want accepted", r)
	}
	if r := open(a); r != DropReplay {
		t.Errorf("replayed a: %v, want replay", r)
	}
	// The node restarts: newer boot id, counters from 1 again.
	boot2 := mustSealer(t, testKey, 1, 1001<<16|1)
	x := mustSeal(t, boot2, 2, 0, []byte("x"))
	if ev := openEv(x); ev != bootNewer {
		t.Errorf("newer boot: boot event %d, want a restart", ev)
	}
	// Old boot's packets, never seen (c) or seen (a): stale.
	if r := open(c); r != DropStaleBoot {
		t.Errorf("old boot's unseen packet: %v, want stale_boot", r)
	}
	if r := open(a); r != DropStaleBoot {
		t.Errorf("old boot's replay: %v, want stale_boot", r)
	}
	// A forgery with a fresher boot id does not displace the real boot.
	f := mustSeal(t, mustSealer(t, bytes.Repeat([]byte{9}, KeyLen), 1, 2000<<16), 2, 0, []byte("f"))
	clk.t = clk.t.Add(deriveEvery) // past the limit on new-boot derivations
	if r := open(f); r != DropAuth {
		t.Errorf("forged newer boot: %v, want auth", r)
	}
	y := mustSeal(t, boot2, 2, 0, []byte("y"))
	if r := open(y); r != DropNone {
		t.Errorf("real boot after forgery: %v, want accepted", r)
	}
	// Silent for longer than StaleBoot: an older boot (clock went back across
	// a restart) is believed.
	clk.t = clk.t.Add(6 * time.Second)
	if ev := openEv(c); ev != bootRollback {
		t.Errorf("older boot after StaleBoot of silence: boot event %d, want a rollback", ev)
	}
}

// TestOpenFreshness: only datagrams that echo this boot's salt are handed
// on, but the others still teach the sender's boot (echo) and use up their
// counters, and answers to them are limited per sender.
func TestOpenFreshness(t *testing.T) {
	nodes := threeNodes()
	src := nodes[0][0]
	clk := &fakeClock{t: time.Unix(1000, 0)}
	o := newOpener(testKey, 2, rxSalt, nodes, 5*time.Second, 2*time.Millisecond, clk.now)
	if e := o.echo(1); e != 0 {
		t.Fatalf("echo before any datagram = %#x, want 0", e)
	}
	s := mustSealerSalt(t, testKey, 1, 1000<<16, 0xabc)
	stale := mustSealEcho(t, s, 2, 0, []byte("to the earlier boot"), rxSalt^1)
	_, pt, _, answer, r := o.open(bytes.Clone(stale), 0, src)
	if r != DropNotFresh || pt != nil {
		t.Fatalf("echo of an earlier boot: %v, plaintext %q; want not_fresh and nothing", r, pt)
	}
	if e := o.echo(1); e != 0xabc {
		t.Errorf("echo after a datagram that was not fresh = %#x, want the sender's salt 0xabc", e)
	}
	if _, _, _, _, r := o.open(bytes.Clone(stale), 0, src); r != DropReplay {
		t.Errorf("the same datagram again: %v, want replay", r)
	}
	if _, pt, _, _, r := o.open(mustSeal(t, s, 2, 0, []byte("fresh")), 0, src); r != DropNone || string(pt) != "fresh" {
		t.Errorf("fresh datagram: %v %q", r, pt)
	}
	// Answers (open's answer result, for datagrams that were not fresh).
	staleAgain := func() bool {
		t.Helper()
		_, _, _, answer, r := o.open(mustSealEcho(t, s, 2, 0, []byte("stale"), rxSalt^1), 0, src)
		if r != DropNotFresh {
			t.Fatalf("another echo of an earlier boot: %v, want not_fresh", r)
		}
		return answer
	}
	if !answer || staleAgain() {
		t.Error("want one answer, then none within a tick")
	}
	clk.t = clk.t.Add(o.answerEvery)
	if !staleAgain() {
		t.Error("no answer after a tick")
	}
	for _, from := range []NodeID{0, 9} {
		other := mustSealEcho(t, mustSealerSalt(t, testKey, from, 1000<<16, 0xabc), 2, 0, []byte("x"), rxSalt^1)
		if _, _, _, answer, _ := o.open(other, 0, src); answer {
			t.Error("answer due to a node not in the map")
		}
	}
}

// FuzzOpen feeds arbitrary datagrams to the receive path: it must never panic
// and must never accept anything that is not a valid sealing by node 1.
func FuzzOpen(f *testing.F) {
	nodes := threeNodes()
	s := mustSealer(f, testKey, 1, 1<<16)
	f.Add(mustSeal(f, s, 2, 0, []byte("hello")), uint8(0))    // valid
	f.Add(mustSeal(f, s, 2, 1, nil), uint8(1))                // valid, empty payload, path 1
	f.Add([]byte{1, 0, 0, 1, 0, 2}, uint8(0))                 // truncated header
	f.Add(make([]byte, MaxDatagram+1), uint8(0))              // oversize
	f.Add(make([]byte, Overhead), uint8(0))                   // zeros: version 0
	f.Add(mustSealEcho(f, s, 2, 0, []byte("x"), 0), uint8(0)) // valid, echoes no boot: not fresh
	ann, _ := s.sealAs(nil, Header{To: 2, Kind: KindAnnounce, Counter: 99, Echo: rxSalt}, nil)
	f.Add(ann, uint8(0)) // valid announce
	f.Fuzz(func(t *testing.T, b []byte, path uint8) {
		p := int(path % 3)
		o := newOpener(testKey, 2, rxSalt, nodes, time.Second, 2*time.Millisecond, func() time.Time { return time.Unix(0, 0) })
		src := nodes[0][min(p, 1)]
		orig := append([]byte(nil), b...)
		h, pt, _, _, r := o.open(b, p, src)
		if r >= NumDropReasons {
			t.Fatalf("reason %d out of range", r)
		}
		if r == DropNotFresh && pt != nil {
			t.Fatalf("not fresh, yet plaintext %q handed on", pt)
		}
		if r != DropNone {
			return
		}
		if h.Echo != rxSalt {
			t.Fatalf("accepted a datagram echoing %#x, not this boot's %#x", h.Echo, uint64(rxSalt))
		}
		// Accepted: it must verify as a sealing of pt by node 1 under the
		// header it carries.
		s2 := mustSealerSalt(t, testKey, h.From, h.Boot, h.Salt)
		again, err := s2.sealAs(nil, Header{To: h.To, Path: h.Path, Kind: h.Kind, Counter: h.Counter, Echo: h.Echo}, pt)
		if err != nil || !bytes.Equal(again, orig) {
			t.Fatalf("accepted a datagram that is not a sealing by node %d: %x", h.From, orig)
		}
	})
}

// FuzzHeader decodes arbitrary bytes as a header: it must never panic, a
// header it accepts must encode back to the same bytes, and what it
// rejects must say why (short input is io.ErrUnexpectedEOF).
func FuzzHeader(f *testing.F) {
	h := Header{Version: Version, Path: 1, From: 1, To: 2, Kind: KindCore, Boot: 1000 << 16, Salt: 7, Counter: 1, Echo: rxSalt}
	good, _ := h.MarshalBinary()
	f.Add(good) // a core datagram's header
	h.Kind, h.Echo = KindAnnounce, 0
	ann, _ := h.MarshalBinary()
	f.Add(ann)                                             // an announce that echoes no boot
	f.Add(good[:HeaderLen-1])                              // short
	f.Add(make([]byte, HeaderLen))                         // zeros: version 0
	f.Add(append([]byte{2}, make([]byte, HeaderLen-1)...)) // version 2
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Header
		err := h.UnmarshalBinary(b)
		if len(b) < HeaderLen {
			if err != errShort {
				t.Fatalf("%d bytes: err %v, want io.ErrUnexpectedEOF", len(b), err)
			}
			return
		}
		if err != nil {
			if h.Version == Version && h.Kind <= KindAnnounce && b[7] == 0 && h.Counter != 0 && h.Salt != 0 {
				t.Fatalf("well-formed header refused: %v", err)
			}
			return
		}
		again, _ := h.MarshalBinary()
		if !bytes.Equal(again, b[:HeaderLen]) {
			t.Fatalf("round trip: %x became %x", b[:HeaderLen], again)
		}
	})
}

func BenchmarkSealOpen(b *testing.B) {
	nodes := threeNodes()
	s := mustSealer(b, testKey, 1, 1<<16)
	o := newOpener(testKey, 2, rxSalt, nodes, time.Second, 2*time.Millisecond, time.Now)
	payload := make([]byte, 200)
	buf := make([]byte, 0, MaxDatagram)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		d, _ := s.seal(buf, 2, 0, payload, rxSalt)
		if _, _, _, _, r := o.open(d, 0, nodes[0][0]); r != DropNone {
			b.Fatal(r)
		}
	}
}

func TestSealOpenAllocs(t *testing.T) {
	nodes := threeNodes()
	s := mustSealer(t, testKey, 1, 1<<16)
	o := newOpener(testKey, 2, rxSalt, nodes, time.Second, 2*time.Millisecond, time.Now)
	payload := make([]byte, 200)
	buf := make([]byte, 0, MaxDatagram)
	d, _ := s.seal(buf, 2, 0, payload, rxSalt)
	o.open(d, 0, nodes[0][0]) // first datagram derives the key
	n := testing.AllocsPerRun(100, func() {
		d, _ := s.seal(buf, 2, 0, payload, rxSalt)
		if _, _, _, _, r := o.open(d, 0, nodes[0][0]); r != DropNone {
			t.Fatal(r)
		}
	})
	if n != 0 {
		t.Errorf("seal+open allocates %.1f times per datagram, want 0", n)
	}
}

// Boot ids carry 64 random bits beyond the boot time (Header.Salt): two
// boots in the same millisecond with the same 16 bits are still two boots
// with two keys, and the salt is authenticated.
func TestBootSalt(t *testing.T) {
	nodes := threeNodes()
	clk := &fakeClock{t: time.Unix(1000, 0)}
	o := newOpener(testKey, 2, rxSalt, nodes, 5*time.Second, 2*time.Millisecond, clk.now)
	const boot = 1000 << 16
	a := mustSealerSalt(t, testKey, 1, boot, 1)
	b := mustSealerSalt(t, testKey, 1, boot, 2)
	da, db := mustSeal(t, a, 2, 0, []byte("a")), mustSeal(t, b, 2, 0, []byte("b"))
	if h, _, _, _, r := o.open(bytes.Clone(da), 0, nodes[0][0]); r != DropNone || h.Salt != 1 {
		t.Fatalf("first boot: %v, salt %d", r, h.Salt)
	}
	if _, _, ev, _, r := o.open(bytes.Clone(db), 0, nodes[0][0]); r != DropNone || ev != bootNewer {
		t.Errorf("same boot time, larger salt: %v, boot event %d; want a restart", r, ev)
	}
	if _, _, _, _, r := o.open(bytes.Clone(da), 0, nodes[0][0]); r != DropStaleBoot {
		t.Errorf("the earlier salt after the later: %v, want stale_boot", r)
	}
	edited := bytes.Clone(mustSeal(t, b, 2, 0, []byte("c")))
	edited[23] ^= 1 // the salt's last byte
	clk.t = clk.t.Add(deriveEvery)
	if _, _, _, _, r := o.open(edited, 0, nodes[0][0]); r != DropAuth {
		t.Errorf("salt edited: %v, want auth", r)
	}
	// Drivers draw the salt from Config.Rand: 64 bits on the wire.
	if HeaderLen != 40 {
		t.Errorf("HeaderLen %d, want 40 (boot time, salt, counter, echo)", HeaderLen)
	}
}

// Forged datagrams claiming new boots of a known sender cost at most one
// key derivation per deriveEvery; a real restart still gets through.
func TestNewBootDerivationsLimited(t *testing.T) {
	nodes := threeNodes()
	clk := &fakeClock{t: time.Unix(1000, 0)}
	o := newOpener(testKey, 2, rxSalt, nodes, 5*time.Second, 2*time.Millisecond, clk.now)
	real := mustSealer(t, testKey, 1, 1000<<16)
	if _, _, _, _, r := o.open(mustSeal(t, real, 2, 0, []byte("x")), 0, nodes[0][0]); r != DropNone {
		t.Fatal(r)
	}
	forger := bytes.Repeat([]byte{9}, KeyLen)
	var got [NumDropReasons]int
	for i := range 100 {
		clk.t = clk.t.Add(time.Millisecond)
		f := mustSeal(t, mustSealer(t, forger, 1, uint64(2000+i)<<16), 2, 0, []byte("f"))
		_, _, _, _, r := o.open(f, 0, nodes[0][0])
		got[r]++
	}
	// 100 ms of forgeries: derivations at 0 and 50 ms fail the tag, the
	// rest are refused before deriving.
	if got[DropAuth] != 2 || got[DropBootLimited] != 98 {
		t.Errorf("100 forged new boots in 100 ms: %d derived (auth), %d limited; want 2 and 98", got[DropAuth], got[DropBootLimited])
	}
	clk.t = clk.t.Add(deriveEvery)
	restarted := mustSealer(t, testKey, 1, 3000<<16)
	if _, _, ev, _, r := o.open(mustSeal(t, restarted, 2, 0, []byte("y")), 0, nodes[0][0]); r != DropNone || ev != bootNewer {
		t.Errorf("a real restart after the forgeries: %v, boot event %d; want accepted as a restart", r, ev)
	}
}
