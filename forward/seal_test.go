package forward

import (
	"bytes"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func clusterKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// pair returns a sealer for node 2 (boot) and an opener for node 1 that
// accepts nodes 2 and 3.
func pair(t testing.TB, boot uint64) (*Sealer, *Opener) {
	t.Helper()
	s, err := NewSealer(clusterKey(7), 2, boot)
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewOpener(clusterKey(7), 1, []uint16{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	return s, o
}

var testPacket = udp(client, server, 5000, 7000, 100)

func dataTo(rcv uint16) TunnelHeader {
	return TunnelHeader{Type: TypeData, Hops: 1, Receiver: rcv, Epoch: 5}
}

func mustSeal(t testing.TB, s *Sealer, h TunnelHeader, payload []byte) []byte {
	t.Helper()
	b, err := s.Seal(nil, h, payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealOpen(t *testing.T) {
	s, o := pair(t, 100)
	hint := TunnelHeader{Type: TypeHint, Receiver: 1, Epoch: 5, Handler: 3, Flow: tunnelFlow}
	for i, c := range []struct {
		h       TunnelHeader
		payload []byte
	}{{dataTo(1), testPacket}, {hint, nil}} {
		b := mustSeal(t, s, c.h, c.payload)
		if want := c.h.Len() + len(c.payload) + TagLen; len(b) != want {
			t.Errorf("%v: %d bytes, want %d", c.h.Type, len(b), want)
		}
		if len(c.payload) > 0 && bytes.Equal(b[c.h.Len():c.h.Len()+len(c.payload)], c.payload) {
			t.Errorf("%v: the payload travels in clear", c.h.Type)
		}
		h, p, r := o.Open(b)
		if r != TunnelOK {
			t.Fatalf("%v: refused: %v", c.h.Type, r)
		}
		want := c.h
		want.Sender, want.Boot, want.Counter = 2, 100, uint64(i+1)
		if d := cmp.Diff(want, h); d != "" {
			t.Errorf("header (-want +got):\n%s", d)
		}
		if !bytes.Equal(p, c.payload) {
			t.Errorf("%v: payload % x, want % x", c.h.Type, p, c.payload)
		}
	}
	if st := o.Stats(); st.Opened != 2 || st.Drops != [numTunnelDrops]uint64{} {
		t.Errorf("stats %+v", st)
	}
}

// TestSealInPlace: a packet read behind HeaderLen bytes of headroom is
// sealed where it lies.
func TestSealInPlace(t *testing.T) {
	s, o := pair(t, 1)
	buf := make([]byte, HeaderLen+len(testPacket)+TagLen)
	copy(buf[HeaderLen:], testPacket)
	b, err := s.Seal(buf[:0], dataTo(1), buf[HeaderLen:HeaderLen+len(testPacket)])
	if err != nil {
		t.Fatal(err)
	}
	if &b[0] != &buf[0] {
		t.Error("Seal did not use the caller's buffer")
	}
	if _, p, r := o.Open(b); r != TunnelOK || !bytes.Equal(p, testPacket) {
		t.Fatalf("in-place datagram: %v, payload % x", r, p)
	}
}

func TestSealRefuses(t *testing.T) {
	s, _ := pair(t, 1)
	for _, c := range []struct {
		name    string
		h       TunnelHeader
		payload []byte
	}{
		{"data without a packet", dataTo(1), nil},
		{"data too long", dataTo(1), make([]byte, MaxPayload+1)},
		{"hint with a payload", TunnelHeader{Type: TypeHint, Receiver: 1, Handler: 2, Flow: tunnelFlow}, []byte{1}},
		{"to itself", dataTo(2), testPacket},
		{"hops 0", TunnelHeader{Type: TypeData, Receiver: 1}, testPacket},
	} {
		if b, err := s.Seal([]byte("x"), c.h, c.payload); err == nil || string(b) != "x" {
			t.Errorf("%s: %q, %v", c.name, b, err)
		}
	}
	// Refusals use no counter: the next datagram is number 1.
	b := mustSeal(t, s, dataTo(1), testPacket)
	var h TunnelHeader
	if h.parse(b); h.Counter != 1 {
		t.Errorf("counter %d after refusals, want 1", h.Counter)
	}
	if _, err := NewSealer(clusterKey(1)[:16], 2, 1); err == nil {
		t.Error("a 16-byte cluster key was accepted")
	}
	if _, err := NewOpener(clusterKey(1), 0, nil); err == nil {
		t.Error("an opener for node 0 was accepted")
	}
}

// TestOpenFlippedBit: flipping any one bit of a datagram gets it refused,
// and the refusal changes nothing: the genuine datagram is accepted after.
func TestOpenFlippedBit(t *testing.T) {
	s, o := pair(t, 1)
	for _, h := range []TunnelHeader{dataTo(1), {Type: TypeRegister, Receiver: 1, Handler: 2, Flow: tunnelFlow}} {
		var p []byte
		if h.Type == TypeData {
			p = testPacket
		}
		b := mustSeal(t, s, h, p)
		for i := range len(b) * 8 {
			c := bytes.Clone(b)
			c[i/8] ^= 1 << (i % 8)
			if _, _, r := o.Open(c); r == TunnelOK {
				t.Fatalf("%v: bit %d flipped and accepted", h.Type, i)
			}
		}
		if _, _, r := o.Open(b); r != TunnelOK {
			t.Fatalf("%v: genuine datagram refused after the forgeries: %v", h.Type, r)
		}
	}
	if st := o.Stats(); st.Drops[TunnelForged] == 0 {
		t.Errorf("no forgery counted: %+v", st)
	}
}

func TestOpenReplay(t *testing.T) {
	s, o := pair(t, 1)
	var dg [][]byte
	for range 5 {
		dg = append(dg, mustSeal(t, s, dataTo(1), testPacket))
	}
	// Out of order is fine, once each.
	for _, i := range []int{1, 0, 4, 2, 3} {
		if _, _, r := o.Open(bytes.Clone(dg[i])); r != TunnelOK {
			t.Fatalf("datagram %d refused: %v", i, r)
		}
	}
	for i := range dg {
		if _, _, r := o.Open(bytes.Clone(dg[i])); r != TunnelReplayed {
			t.Errorf("datagram %d replayed: %v", i, r)
		}
	}
	// Far behind the window: refused even though never seen.
	old := mustSeal(t, s, dataTo(1), testPacket)
	for range TunnelWindow {
		mustSeal(t, s, dataTo(1), testPacket)
	}
	if _, _, r := o.Open(mustSeal(t, s, dataTo(1), testPacket)); r != TunnelOK {
		t.Fatal(r)
	}
	if _, _, r := o.Open(old); r != TunnelReplayed {
		t.Errorf("a datagram a window behind: %v", r)
	}
	if got := o.Stats().Drops[TunnelReplayed]; got != 6 {
		t.Errorf("replayed counted %d, want 6", got)
	}
}

func TestOpenBoots(t *testing.T) {
	s1, o := pair(t, 100)
	s2, _ := pair(t, 200) // the same node after a restart
	d1 := mustSeal(t, s1, dataTo(1), testPacket)
	d1b := mustSeal(t, s1, dataTo(1), testPacket)
	d2 := mustSeal(t, s2, dataTo(1), testPacket)
	if _, _, r := o.Open(d1); r != TunnelOK {
		t.Fatal(r)
	}
	if _, _, r := o.Open(d2); r != TunnelOK {
		t.Fatalf("newer boot refused: %v", r)
	}
	if _, _, r := o.Open(d1b); r != TunnelStaleBoot {
		t.Errorf("older boot after a newer one: %v", r)
	}
	// A forgery claiming a newer boot changes nothing.
	f := mustSeal(t, s2, dataTo(1), testPacket)
	f[17] ^= 1 // boot id 200 → 456 (byte 16..23 is the boot)
	f[16] ^= 1
	if _, _, r := o.Open(f); r != TunnelForged {
		t.Errorf("forged newer boot: %v", r)
	}
	if _, _, r := o.Open(mustSeal(t, s2, dataTo(1), testPacket)); r != TunnelOK {
		t.Errorf("genuine datagram after a forged boot: %v", r)
	}
	// Forget: the old boot is believed again (a clock that went back).
	o.Forget(2)
	if _, _, r := o.Open(d1b); r != TunnelOK {
		t.Errorf("after Forget: %v", r)
	}
}

func TestOpenRefuses(t *testing.T) {
	s, o := pair(t, 1)
	other, _ := NewSealer(clusterKey(8), 2, 1) // another cluster's key
	s4, _ := NewSealer(clusterKey(7), 4, 1)    // a node that is not a peer
	genuine := mustSeal(t, s, dataTo(1), testPacket)
	for _, c := range []struct {
		name string
		b    []byte
		want TunnelDrop
	}{
		{"another cluster key", mustSeal(t, other, dataTo(1), testPacket), TunnelForged},
		{"for another node", mustSeal(t, s, dataTo(3), testPacket), TunnelNotForUs},
		{"unknown sender", mustSeal(t, s4, dataTo(1), testPacket), TunnelUnknownSender},
		{"short", genuine[:HeaderLen+TagLen-1], TunnelShort},
		{"oversize", make([]byte, MaxDatagram+1), TunnelOversize},
		{"no payload on data", append(bytes.Clone(genuine[:HeaderLen]), make([]byte, TagLen)...), TunnelMalformed},
		{"truncated", genuine[:len(genuine)-1], TunnelForged},
		{"version", append([]byte{2}, genuine[1:]...), TunnelBadVersion},
	} {
		if _, p, r := o.Open(bytes.Clone(c.b)); r != c.want || p != nil {
			t.Errorf("%s: %v, want %v", c.name, r, c.want)
		}
	}
	// SetPeers: node 4 accepted once it is a peer; 2 keeps its window.
	o.SetPeers([]uint16{2, 4})
	if _, _, r := o.Open(mustSeal(t, s4, dataTo(1), testPacket)); r != TunnelOK {
		t.Errorf("new peer: %v", r)
	}
	if _, _, r := o.Open(bytes.Clone(genuine)); r != TunnelOK {
		t.Errorf("kept peer: %v", r)
	}
	if _, _, r := o.Open(bytes.Clone(genuine)); r != TunnelReplayed {
		t.Errorf("kept peer's window forgotten: %v", r)
	}
	o.SetPeers([]uint16{4})
	if _, _, r := o.Open(bytes.Clone(genuine)); r != TunnelUnknownSender {
		t.Errorf("removed peer: %v", r)
	}
}

// TestSealOpenConcurrent: workers sharing a sealer never reuse a counter,
// and receivers sharing an opener accept every datagram exactly once.
func TestSealOpenConcurrent(t *testing.T) {
	s, o := pair(t, 1)
	const workers, each = 4, 500
	out := make(chan []byte, workers*each*2)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				b := mustSeal(t, s, dataTo(1), testPacket)
				out <- b
				out <- bytes.Clone(b) // a duplicate, opened concurrently
			}
		})
	}
	wg.Wait()
	close(out)
	var rwg sync.WaitGroup
	for range workers {
		rwg.Go(func() {
			for b := range out {
				o.Open(b)
			}
		})
	}
	rwg.Wait()
	st := o.Stats()
	if st.Opened != workers*each || st.Drops[TunnelReplayed] != workers*each {
		t.Errorf("opened %d, replayed %d; want %d each", st.Opened, st.Drops[TunnelReplayed], workers*each)
	}
}

func TestSealOpenAllocs(t *testing.T) {
	s, o := pair(t, 1)
	buf := make([]byte, 0, MaxDatagram)
	var r TunnelDrop
	n := testing.AllocsPerRun(1000, func() {
		b, err := s.Seal(buf, dataTo(1), testPacket)
		if err != nil {
			t.Fatal(err)
		}
		_, _, r = o.Open(b)
	})
	if n != 0 || r != TunnelOK {
		t.Errorf("Seal and Open: %.1f allocations, %v", n, r)
	}
}

// FuzzOpen: no bytes make Open panic or return an unknown reason, and
// whatever it accepts has a header that re-encodes to the datagram's.
func FuzzOpen(f *testing.F) {
	s, _ := pair(f, 1)
	data := mustSeal(f, s, dataTo(1), testPacket)
	reg := mustSeal(f, s, TunnelHeader{Type: TypeRegister, Receiver: 1, Handler: 2, Flow: tunnelFlow}, nil)
	ack := mustSeal(f, s, TunnelHeader{Type: TypeAck, Receiver: 1, Handler: 1, Flow: tunnelFlow}, nil)
	f.Add(data)                    // genuine data datagram (accepted when the fuzzer tries it)
	f.Add(reg)                     // genuine register
	f.Add(ack)                     // genuine register acknowledgement
	f.Add(data[:HeaderLen+TagLen]) // header and a tag, no payload
	f.Add(reg[:FlowHeaderLen])     // register without its tag
	f.Add([]byte{})                // nothing
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := NewOpener(clusterKey(7), 1, []uint16{2, 3})
		if err != nil {
			t.Fatal(err)
		}
		h, p, r := o.Open(bytes.Clone(b))
		if r >= numTunnelDrops {
			t.Fatalf("unknown reason %d", r)
		}
		if r != TunnelOK {
			if p != nil {
				t.Fatal("a payload with a refusal")
			}
			return
		}
		hb, err := h.MarshalBinary()
		if err != nil || !bytes.HasPrefix(b, hb) || len(b) != len(hb)+len(p)+TagLen {
			t.Fatalf("accepted % x as %+v (%v)", b, h, err)
		}
	})
}

func BenchmarkSealOpen(b *testing.B) {
	s, o := pair(b, 1)
	pkt := make([]byte, 1400)
	copy(pkt, testPacket)
	buf := make([]byte, 0, MaxDatagram)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		d, _ := s.Seal(buf, dataTo(1), pkt)
		if _, _, r := o.Open(d); r != TunnelOK {
			b.Fatal(r)
		}
	}
}
