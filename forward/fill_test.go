package forward

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// TestFillingDirectory: with unfilled members, every row ranks the
// filled members first (an unfilled member is never authoritative while
// a filled one exists; it is standby only of rows with a single filled
// member), each group in rendezvous order; the target ranking is the
// plain one; the table does not depend on the order members and
// unfilled are given in, so every member builds the same; with every
// member unfilled, the plain ranking.
func TestFillingDirectory(t *testing.T) {
	key := testDirKey(t)
	for _, tc := range []struct {
		members, unfilled []uint16
	}{
		{[]uint16{1, 2, 3}, []uint16{3}},
		{[]uint16{1, 2, 3}, []uint16{1, 3}},
		{[]uint16{1, 2}, []uint16{2}},
		{ids(8), []uint16{2, 5, 8}},
		{ids(8), []uint16{1, 2, 3, 4, 5, 6, 7}},
		{[]uint16{1, 2, 3}, []uint16{1, 2, 3}}, // all unfilled
		{[]uint16{1, 2, 3}, []uint16{9}},       // not a member: ignored
	} {
		d := NewFillingDirectory(key, tc.members, tc.unfilled)
		plain := NewDirectory(key, tc.members)
		rev := slices.Clone(tc.members)
		slices.Reverse(rev)
		urev := slices.Clone(tc.unfilled)
		slices.Reverse(urev)
		d2 := NewFillingDirectory(key, append(rev, rev[0]), urev)
		var filled, unfilled []uint16
		for _, m := range tc.members {
			if slices.Contains(tc.unfilled, m) {
				unfilled = append(unfilled, m)
			} else {
				filled = append(filled, m)
			}
		}
		for r := 0; r < Rows; r += 7 {
			row := uint16(r)
			a, s := d.Owners(row)
			if a2, s2 := d2.Owners(row); a2 != a || s2 != s {
				t.Fatalf("%v/%v row %d: %d,%d here, %d,%d from another order", tc.members, tc.unfilled, r, a, s, a2, s2)
			}
			pa, ps := plain.Owners(row)
			if ta, ts := d.TargetOwners(row); ta != pa || ts != ps {
				t.Fatalf("%v/%v row %d: target %d,%d, plain %d,%d", tc.members, tc.unfilled, r, ta, ts, pa, ps)
			}
			var wa, ws uint16
			switch {
			case len(filled) == 0:
				wa, ws = pa, ps
			case len(filled) == 1:
				wa = filled[0]
				ws, _ = modelOwners(key, unfilled, row)
			default:
				wa, ws = modelOwners(key, filled, row)
			}
			if a != wa || s != ws {
				t.Fatalf("%v/%v row %d: owners %d,%d, want %d,%d", tc.members, tc.unfilled, r, a, s, wa, ws)
			}
			if len(filled) > 0 && slices.Contains(unfilled, a) {
				t.Fatalf("%v/%v row %d: unfilled %d first", tc.members, tc.unfilled, r, a)
			}
		}
		for _, u := range unfilled {
			if n := d.AuthRows(u); len(filled) > 0 && n != 0 {
				t.Errorf("%v/%v: unfilled %d authoritative for %d rows", tc.members, tc.unfilled, u, n)
			}
		}
	}
}

// TestFillingDirectoryMovesNothing: a member joining unfilled moves no
// row's owners (at three members and more); once filled, the rows it
// takes are those of the plain directory.
func TestFillingDirectoryMovesNothing(t *testing.T) {
	key := testDirKey(t)
	before := NewDirectory(key, []uint16{1, 2, 3})
	joining := NewFillingDirectory(key, []uint16{1, 2, 3, 4}, []uint16{4})
	after := NewFillingDirectory(key, []uint16{1, 2, 3, 4}, nil)
	for r := 0; r < Rows; r++ {
		a, s := before.Owners(uint16(r))
		if ja, js := joining.Owners(uint16(r)); ja != a || js != s {
			t.Fatalf("row %d: %d,%d before the join, %d,%d while 4 fills", r, a, s, ja, js)
		}
	}
	if n := Moved(joining, after); n < Rows/5 || n > Rows*3/10 {
		t.Errorf("%d rows moved when 4 got filled, want about a quarter", n)
	}
}

// fillCluster is a symCluster whose node 3 restarts empty and fills.
func fillCluster(t *testing.T, mod func(*Config)) (*symCluster, []uint16) {
	c := newSymCluster(t, mod)
	// Flows handled by n1, one per placement of their row's owners now
	// and once n3 is filled.
	var ports []uint16
	for _, o := range [][2]uint16{{3, 1}, {3, 2}, {1, 3}, {2, 3}, {1, 2}, {2, 1}} {
		sp := c.portWithOwners(protoUDP, 7000, o[0], o[1])
		c.send(1, udp(client, server, sp, 7000, 10), ext, int_)
		c.send(1, udp(server, client, 7000, sp, 10), int_, ext)
		ports = append(ports, sp)
	}
	c.pumpSync(nil)
	for _, f := range c.f {
		f.PeerBoot(3, 0, c.now)
	}
	// n3 restarts, out of the ring and back: unfilled.
	c.f[3] = newFilter(t, func(cfg *Config) {
		cfg.Self = 3
		if mod != nil {
			mod(cfg)
		}
	})
	var ck [32]byte
	ck[0] = 7
	key, _ := DirectoryKey(ck[:])
	c.dir = NewFillingDirectory(key, []uint16{1, 2, 3}, []uint16{3})
	for _, f := range c.f {
		f.SetDirectory(c.dir)
	}
	c.f[3].StartFill()
	return c, ports
}

// TestFill: a restarted node asks the others for its rows, each copies
// it the replicas it holds and the flows it handles of the rows it will
// own, and answers done once all are acknowledged; then it is filled, and
// holds every flow of its future rows.
func TestFill(t *testing.T) {
	c, ports := fillCluster(t, nil)
	if !c.f[3].Filling() {
		t.Fatal("n3 not filling after StartFill")
	}
	c.now += int64(time.Millisecond)
	c.pumpSync(nil)
	s := c.f[3].Stats().Sym.Repl
	if c.f[3].Filling() || s.Fill.Fills != 1 || s.Fill.TimedOut || s.Fill.Waiting != 0 {
		t.Fatalf("n3 after the pump: %+v, want filled, not timed out", s.Fill)
	}
	// Four of the six flows have rows n3 owns once filled.
	if s.Replicas != 4 {
		t.Errorf("n3 holds %d replicas, want 4", s.Replicas)
	}
	for _, sp := range ports {
		k, _ := keyOf(protoUDP, client.As4(), server.As4(), sp, 7000)
		a, st := c.dir.TargetOwners(c.dir.Row(k))
		_, held := c.f[3].sym.replicas.get(k, c.now)
		if held != (a == 3 || st == 3) {
			t.Errorf("flow %d (owners %d,%d once filled): held by n3 %v", sp, a, st, held)
		}
	}
	for _, id := range []uint16{1, 2} {
		if st := c.f[id].Stats().Sym.Repl.Fill; st.Served != 1 || st.Serving != 0 {
			t.Errorf("n%d served %d fills, serving %d; want 1, 0", id, st.Served, st.Serving)
		}
	}
}

// TestFillChangesDuringFill: a flow created after the fill's walk, before
// the directory ranks the filled node first, reaches it all the same: it
// is replicated to the row's future owner too.
func TestFillChangesDuringFill(t *testing.T) {
	c, _ := fillCluster(t, nil)
	c.pumpSync(nil)
	if c.f[3].Filling() {
		t.Fatal("n3 still filling")
	}
	// A flow whose row n3 will own, and not now.
	var k Key
	sp := uint16(20000)
	for ; ; sp++ {
		k, _ = keyOf(protoUDP, client.As4(), server.As4(), sp, 7001)
		a, s := c.dir.Owners(c.dir.Row(k))
		ta, _ := c.dir.TargetOwners(c.dir.Row(k))
		if ta == 3 && a != 3 && s != 3 {
			break
		}
	}
	c.send(2, udp(client, server, sp, 7001, 10), ext, int_) // a new flow at n2 while n3 fills
	c.pumpSync(nil)
	if _, ok := c.f[3].sym.replicas.get(k, c.now); !ok {
		t.Errorf("n3 did not get the flow created during its fill (its row's future authoritative node)")
	}
}

// TestFillTimeout: a member that never answers (its datagrams are
// lost) holds the fill up only until FillTimeout; the fill then ends,
// counted as timed out.
func TestFillTimeout(t *testing.T) {
	c, _ := fillCluster(t, func(cfg *Config) { cfg.FillTimeout = time.Second })
	lose := func(d SyncDatagram, from uint16) bool { return from == 2 } // n2's answers never come
	c.pumpSync(lose)
	if !c.f[3].Filling() {
		t.Fatal("n3 filled without n2's answer")
	}
	_, next := c.f[3].SyncMessages(c.now, nil)
	if next == 0 || next > c.now+int64(time.Second) {
		t.Errorf("next wake-up %d ns away, want at most the timeout", next-c.now)
	}
	c.now += int64(time.Second)
	c.pumpSync(lose)
	s := c.f[3].Stats().Sym.Repl.Fill
	if c.f[3].Filling() || !s.TimedOut || s.Timeouts != 1 || s.Took != int64(time.Second) {
		t.Errorf("after the timeout: %+v, want filled, 1 timeout, took 1 s", s)
	}
}

// TestFillAlone: a node alone in its directory ends its fill at the
// timeout, not counted as timed out; it asks nobody.
func TestFillAlone(t *testing.T) {
	f := newFilter(t, func(cfg *Config) { cfg.Self = 1 })
	f.SetDirectory(NewDirectory(testDirKey(t), []uint16{1}))
	f.StartFill()
	if ds, _ := f.SyncMessages(0, nil); len(ds) != 0 || !f.Filling() {
		t.Fatalf("alone: sent %v, filling %v", ds, f.Filling())
	}
	f.SyncMessages(int64(DefaultFillTimeout), nil)
	if s := f.Stats().Sym.Repl.Fill; f.Filling() || s.Timeouts != 0 || s.Fills != 1 {
		t.Errorf("alone after the timeout: %+v", s)
	}
}

// TestFillBoundedSteps: a fill of many replicas is queued a bounded
// number at a time, as the asker's queue drains, never overflowing it.
func TestFillBoundedSteps(t *testing.T) {
	c, _ := fillCluster(t, func(cfg *Config) { cfg.MaxSyncQueue = 4096 })
	// n2 holds 20,000 replicas handled by n1 (as if replicated).
	n := 0
	for sp := uint16(1024); n < 20000; sp++ {
		k, _ := keyOf(protoUDP, client.As4(), server.As4(), sp, 9000)
		rec := SyncRecord{Flow: k, State: StateAssured, Handler: 1, Expires: 60000}
		c.f[2].sym.replicas.apply(&rec, 1, 0, 1, c.now)
		n++
	}
	reqs, _ := c.f[3].SyncMessages(c.now, nil)
	for _, d := range reqs {
		c.f[d.To].StepSync(TunnelHeader{Type: d.Type, Sender: 3, Receiver: d.To}, d.Payload, c.now)
	}
	before := c.f[2].Stats().Sym.Repl
	ds, _ := c.f[2].SyncMessages(c.now, nil)
	after := c.f[2].Stats().Sym.Repl
	if q := after.Queued; q > 4096/2+fillPerStep || after.Overflow != before.Overflow {
		t.Fatalf("one step queued %d records (overflow %d)", q, after.Overflow-before.Overflow)
	}
	if len(ds) == 0 {
		t.Fatal("nothing sent")
	}
	for _, d := range ds {
		c.f[d.To].StepSync(TunnelHeader{Type: d.Type, Sender: 2, Receiver: d.To}, bytes.Clone(d.Payload), c.now)
	}
	c.pumpSync(nil)
	got := c.f[3].Stats().Sym.Repl
	var want int
	for sp := uint16(1024); sp < 1024+20000; sp++ {
		k, _ := keyOf(protoUDP, client.As4(), server.As4(), sp, 9000)
		if a, s := c.dir.TargetOwners(c.dir.Row(k)); a == 3 || s == 3 {
			want++
		}
	}
	if got.Fill.Filling || got.BulkRcvd != uint64(want) || c.f[2].Stats().Sym.Repl.Overflow != 0 {
		t.Errorf("n3 got %d bulk records, want %d (filling %v, n2 overflow %d)", got.BulkRcvd, want, got.Fill.Filling, c.f[2].Stats().Sym.Repl.Overflow)
	}
}

// TestFillRecordWire: a fill's control records round-trip; one with a
// byte outside its id and sender set, or id 0, or from another node than
// its sender, is refused.
func TestFillRecordWire(t *testing.T) {
	b := SyncBatch{Seq: 9, Records: []SyncRecord{
		{Fill: FillRequest, FillID: 0x0102030405060708, Handler: 3},
		{Fill: FillDone, FillID: 1, Handler: 3},
	}}
	p, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0}
	if !bytes.Equal(p[syncBatchHead:syncBatchHead+SyncRecordLen], want) {
		t.Errorf("request on the wire: % x, want % x", p[syncBatchHead:syncBatchHead+SyncRecordLen], want)
	}
	var got SyncBatch
	if err := got.UnmarshalBinary(p); err != nil || !slices.Equal(got.Records, b.Records) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, i := range []int{8, 12, 14, 15, 18, 23} {
		q := bytes.Clone(p)
		q[syncBatchHead+i] = 1
		if got.UnmarshalBinary(q) == nil {
			t.Errorf("byte %d set: accepted", i)
		}
	}
	q := bytes.Clone(p)
	clear(q[syncBatchHead : syncBatchHead+8])
	if got.UnmarshalBinary(q) == nil {
		t.Error("id 0 accepted")
	}
	f := newFilter(t, func(c *Config) { c.Self = 1 })
	f.SetDirectory(NewDirectory(testDirKey(t), []uint16{1, 2, 3}))
	f.StepSync(TunnelHeader{Type: TypeSync, Sender: 2, Receiver: 1}, p, 0) // records naming n3, from n2
	if s := f.Stats().Sym.Repl; s.Malformed != 1 || len(f.sym.fill.serve) != 0 {
		t.Errorf("a request naming another sender: malformed %d, serving %d", s.Malformed, len(f.sym.fill.serve))
	}
}
