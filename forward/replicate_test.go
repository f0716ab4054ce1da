package forward

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// pumpSync delivers the sync batches and acks every node has to send at
// c.now, repeatedly, until none is left; lose, when set, decides which are
// lost on the way. Nodes not in c.f (dead ones) receive nothing.
func (c *symCluster) pumpSync(lose func(SyncDatagram, uint16) bool) (sent int) {
	for more := true; more; {
		more = false
		for id := uint16(1); id <= 3; id++ {
			f := c.f[id]
			if f == nil {
				continue
			}
			ds, _ := f.SyncMessages(c.now, nil)
			for _, d := range ds {
				more = true
				sent++
				to := c.f[d.To]
				if to == nil || lose != nil && lose(d, id) {
					continue
				}
				to.StepSync(TunnelHeader{Type: d.Type, Sender: id, Receiver: d.To}, bytes.Clone(d.Payload), c.now) // boot 0, as pump's registers
			}
		}
	}
	return sent
}

// kill removes node n: it receives nothing more, and the survivors get
// the directory without it.
func (c *symCluster) kill(n uint16) {
	delete(c.f, n)
	var ms []uint16
	for _, m := range c.dir.Members() {
		if m != n {
			ms = append(ms, m)
		}
	}
	var ck [32]byte
	ck[0] = 7
	key, _ := DirectoryKey(ck[:])
	c.dir = NewDirectory(key, ms)
	for _, f := range c.f {
		f.SetDirectory(c.dir)
	}
}

// portWithOwners returns a client port whose flow to the server's port
// dport has auth as its authoritative node and standby as its standby.
func (c *symCluster) portWithOwners(proto uint8, dport, auth, standby uint16) uint16 {
	for p := uint16(20000); p < 40000; p++ {
		k, _ := keyOf(proto, client.As4(), server.As4(), p, dport)
		if a, s := c.dir.Lookup(k); a == auth && s == standby {
			return p
		}
	}
	c.t.Fatalf("no port with owners %d, %d", auth, standby)
	return 0
}

func TestSyncBatchRoundTrip(t *testing.T) {
	k, _ := keyOf(protoTCP, client.As4(), server.As4(), 40000, 80)
	b := SyncBatch{Seq: 7, Records: []SyncRecord{
		{Flow: k, State: StateEstablished, OrigIsA: true, Handler: 1, Rule: 2, Expires: 432000000},
		{Flow: k, Gone: true, Handler: 1},
		{Flow: k, State: StateFinWait, FinOrig: true, Handler: 1},
		{Flow: k, State: StateEstablished, Bulk: true, Handler: 3},
	}}
	p, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != syncBatchHead+4*SyncRecordLen {
		t.Errorf("%d bytes, want %d", len(p), syncBatchHead+4*SyncRecordLen)
	}
	want := []byte{
		0, 0, 0, 0, 0, 0, 0, 7, // seq
		0, 4, 0, 0, // count, reserved
		198, 51, 100, 10, 203, 0, 113, 10, 0, 80, 0x9c, 0x40, 6, // key: A (server), B (client), PA, PB, proto
		1, 3, 1, 0, 1, 0, 2, 0x19, 0xbf, 0xcc, 0x00, // update, established, orig is A, handler 1, rule 2, 5 days in ms
	}
	if d := cmp.Diff(want, p[:len(want)]); d != "" {
		t.Errorf("wire bytes (-want +got):\n%s", d)
	}
	var got SyncBatch
	if err := got.UnmarshalBinary(p); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(b, got); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
	a := SyncAck{Seqs: []uint64{1, 2, 1 << 40}}
	pa, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var ga SyncAck
	if err := ga.UnmarshalBinary(pa); err != nil || !cmp.Equal(a, ga) {
		t.Errorf("ack round trip: %v %v", ga, err)
	}
}

func TestSyncRefused(t *testing.T) {
	k, _ := keyOf(protoTCP, client.As4(), server.As4(), 40000, 80)
	good, _ := (&SyncBatch{Seq: 1, Records: []SyncRecord{{Flow: k, State: StateSynSent, Handler: 1}}}).MarshalBinary()
	ack, _ := (&SyncAck{Seqs: []uint64{5}}).MarshalBinary()
	edit := func(b []byte, i int, v byte) []byte {
		c := bytes.Clone(b)
		c[i] = v
		return c
	}
	for _, tc := range []struct {
		name string
		b    []byte
		ack  bool
		want error // nil: any error but io.ErrUnexpectedEOF
	}{
		{"empty", nil, false, io.ErrUnexpectedEOF},
		{"head only", good[:syncBatchHead], false, io.ErrUnexpectedEOF},
		{"record short", good[:len(good)-1], false, io.ErrUnexpectedEOF},
		{"trailing", append(bytes.Clone(good), 0), false, nil},
		{"seq 0", edit(good, 7, 0), false, nil},
		{"count 0", edit(good, 9, 0), false, nil},
		{"count 57", edit(good, 9, MaxSyncRecords+1), false, nil},
		{"reserved", edit(good, 10, 1), false, nil},
		{"key not canonical", edit(good, 12, 255), false, nil},
		{"kind 3", edit(good, 12+13, 3), false, nil},
		{"state none", edit(good, 12+14, 0), false, nil},
		{"state unknown", edit(good, 12+14, uint8(numStates)), false, nil},
		{"flag unknown", edit(good, 12+15, 8), false, nil},
		{"gone bulk", edit(edit(edit(good, 12+13, 2), 12+14, 0), 12+15, 4), false, nil},
		{"handler 0", edit(good, 12+17, 0), false, nil},
		{"gone with a state", edit(good, 12+13, 2), false, nil},
		{"ack empty", nil, true, io.ErrUnexpectedEOF},
		{"ack short", ack[:len(ack)-1], true, io.ErrUnexpectedEOF},
		{"ack trailing", append(bytes.Clone(ack), 0), true, nil},
		{"ack count 0", edit(ack, 1, 0), true, nil},
		{"ack seq 0", edit(ack, len(ack)-1, 0), true, nil},
		{"ack reserved", edit(ack, 3, 1), true, nil},
	} {
		var err error
		if tc.ack {
			var a SyncAck
			err = a.UnmarshalBinary(tc.b)
		} else {
			var b SyncBatch
			err = b.UnmarshalBinary(tc.b)
		}
		switch {
		case err == nil:
			t.Errorf("%s: accepted", tc.name)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		case tc.want == nil && errors.Is(err, io.ErrUnexpectedEOF):
			t.Errorf("%s: %v, want a format error", tc.name, err)
		}
	}
}

// FuzzSyncBatch: no bytes make the decoders panic; what they accept
// re-encodes to the same bytes.
func FuzzSyncBatch(f *testing.F) {
	k, _ := keyOf(protoTCP, client.As4(), server.As4(), 40000, 80)
	good, _ := (&SyncBatch{Seq: 1, Records: []SyncRecord{{Flow: k, State: StateEstablished, OrigIsA: true, Handler: 2, Expires: 9}, {Flow: k, Gone: true, Handler: 2}}}).MarshalBinary()
	ack, _ := (&SyncAck{Seqs: []uint64{1, 2}}).MarshalBinary()
	f.Add(good)                     // two records
	f.Add(ack)                      // an ack of two
	f.Add(good[:syncBatchHead+5])   // cut in a record
	f.Add([]byte{0, 1, 0, 0, 0, 0}) // an ack cut short
	f.Add(make([]byte, 12+24*56+1)) // zeros, a byte too long
	fill, _ := (&SyncBatch{Seq: 2, Records: []SyncRecord{{Fill: FillRequest, FillID: 5, Handler: 2}, {Fill: FillDone, FillID: 5, Handler: 2}}}).MarshalBinary()
	f.Add(fill) // a fill's request and done
	f.Fuzz(func(t *testing.T, p []byte) {
		var b SyncBatch
		if b.UnmarshalBinary(p) == nil {
			q, err := b.MarshalBinary()
			if err != nil || !bytes.Equal(p, q) {
				t.Fatalf("batch % x decoded as %+v, re-encodes as % x (%v)", p, b, q, err)
			}
		}
		var a SyncAck
		if a.UnmarshalBinary(p) == nil {
			q, err := a.MarshalBinary()
			if err != nil || !bytes.Equal(p, q) {
				t.Fatalf("ack % x decoded as %+v, re-encodes as % x (%v)", p, a, q, err)
			}
		}
	})
}

// FuzzStepSync: no payload makes the filter panic, and a malformed one
// changes nothing but a counter.
func FuzzStepSync(f *testing.F) {
	k, _ := keyOf(protoTCP, client.As4(), server.As4(), 40000, 80)
	good, _ := (&SyncBatch{Seq: 3, Records: []SyncRecord{{Flow: k, State: StateEstablished, Handler: 2, Expires: 1000}}}).MarshalBinary()
	ack, _ := (&SyncAck{Seqs: []uint64{1}}).MarshalBinary()
	f.Add(good, true)  // a batch from its handler
	f.Add(ack, false)  // an ack of nothing sent
	f.Add(good, false) // a batch read as an ack
	fill, _ := (&SyncBatch{Seq: 4, Records: []SyncRecord{{Fill: FillRequest, FillID: 5, Handler: 2}, {Fill: FillDone, FillID: 5, Handler: 2}}}).MarshalBinary()
	f.Add(fill, true) // a fill's request and done
	flt := newFilter(f, func(c *Config) { c.Self = 1; c.MaxReplicas = 4 })
	flt.SetDirectory(NewDirectory([DirectoryKeyLen]byte{}, []uint16{1, 2, 3}))
	f.Fuzz(func(t *testing.T, p []byte, batch bool) {
		typ := TypeSyncAck
		if batch {
			typ = TypeSync
		}
		before := flt.Stats().Sym.Repl
		flt.StepSync(TunnelHeader{Type: typ, Sender: 2, Receiver: 1, Boot: 1}, p, 0)
		after := flt.Stats().Sym.Repl
		if after.Replicas > 4 {
			t.Fatalf("%d replicas, cap 4", after.Replicas)
		}
		var b SyncBatch
		var a SyncAck
		if batch && b.UnmarshalBinary(p) != nil || !batch && a.UnmarshalBinary(p) != nil {
			if after.Malformed == before.Malformed {
				t.Fatalf("malformed % x not counted", p)
			}
		}
		flt.SyncMessages(0, nil) // the acks it owes: never more than it can hold
	})
}

// TestReplicateToAuthAndStandby: a flow's handler replicates its
// creation and its state changes to the flow's authoritative node and
// standby (not to itself), collapsed, acknowledged; the gone record
// removes the replicas.
func TestReplicateToAuthAndStandby(t *testing.T) {
	for _, owners := range [][2]uint16{{2, 3}, {3, 2}, {1, 2}, {2, 1}} {
		c := newSymCluster(t, nil)
		sp := c.portWithOwners(protoTCP, 80, owners[0], owners[1])
		k, _ := keyOf(protoTCP, client.As4(), server.As4(), sp, 80)
		c.send(1, tcp(client, server, sp, 80, tcpSYN), ext, int_)
		c.send(1, tcp(server, client, 80, sp, tcpSYN|tcpACK), int_, ext) // n1 as the server's gateway too
		c.send(1, tcp(client, server, sp, 80, tcpACK), ext, int_)
		c.pumpSync(nil)
		targets := 0
		for id := uint16(2); id <= 3; id++ {
			r, ok := c.f[id].sym.replicas.get(k, c.now)
			if id != owners[0] && id != owners[1] {
				if ok {
					t.Errorf("owners %v: n%d holds a replica", owners, id)
				}
				continue
			}
			targets++
			if !ok || r.handler != 1 || r.state != StateEstablished || r.flags != 0 { // the server is the key's A side
				t.Errorf("owners %v: n%d's replica %+v (%v), want established, handled by n1", owners, id, r, ok)
			}
		}
		s := c.f[1].Stats().Sym.Repl
		// Two changes (syn_sent, established; syn_recv is not sent by
		// itself) queued before any was sent: collapsed into one record
		// per target.
		if s.Records != uint64(targets) || s.Collapsed != uint64(targets) || s.Acked != s.Batches || s.InFlight != 0 || s.Queued != 0 {
			t.Errorf("owners %v: n1 replication %+v, want %d records, acked", owners, s, targets)
		}
		if s.Lag == ([lagBuckets]uint64{}) {
			t.Errorf("owners %v: no lag observed", owners)
		}

		// RST: close, then expiry at the handler removes the replicas.
		c.send(1, tcp(client, server, sp, 80, tcpRST), ext, int_)
		c.pumpSync(nil)
		if r, _ := c.f[owners[0]].sym.replicas.get(k, c.now); owners[0] != 1 && r.state != StateClose {
			t.Errorf("owners %v: replica after RST %+v, want close", owners, r)
		}
		c.now += 11 * sec
		c.f[1].Sweep(c.now)
		c.pumpSync(nil)
		for id := uint16(2); id <= 3; id++ {
			if _, ok := c.f[id].sym.replicas.get(k, c.now-10*sec); ok {
				t.Errorf("owners %v: n%d still holds the replica after the flow ended", owners, id)
			}
		}
	}
}

// TestReplicationResend: a lost batch is sent again after SyncResend;
// a change queued meanwhile waits for it (Nagle's rule) and follows; a
// batch that arrives late does not undo a newer record.
func TestReplicationResend(t *testing.T) {
	c := newSymCluster(t, nil)
	sp := c.portWithOwners(protoUDP, 7000, 2, 3)
	k, _ := keyOf(protoUDP, client.As4(), server.As4(), sp, 7000)
	c.send(1, udp(client, server, sp, 7000, 10), ext, int_)
	lost := 0
	c.pumpSync(func(d SyncDatagram, from uint16) bool {
		if d.Type == TypeSync && d.To == 2 {
			lost++
			return true
		}
		return false
	})
	if _, ok := c.f[2].sym.replicas.get(k, c.now); ok || lost != 1 {
		t.Fatalf("n2 holds the replica of a lost batch (lost %d)", lost)
	}
	if ds, next := c.f[1].SyncMessages(c.now, nil); len(ds) != 0 || next != c.now+int64(DefaultSyncResend) {
		t.Fatalf("before the resend time: %d datagrams, next %d", len(ds), next)
	}
	// The reply makes the flow assured: the change waits while the
	// first batch is in flight to n2 (it went to n3 at once).
	c.send(1, udp(server, client, 7000, sp, 10), int_, ext)
	c.pumpSync(nil)
	if s := c.f[1].Stats().Sym.Repl; s.Queued != 1 || s.InFlight != 1 {
		t.Errorf("n1 while its batch to n2 is lost: %+v, want 1 queued, 1 in flight", s)
	}
	if r, _ := c.f[3].sym.replicas.get(k, c.now); r.state != StateAssured {
		t.Errorf("n3's replica %+v, want assured", r)
	}
	c.now += int64(DefaultSyncResend)
	c.pumpSync(nil) // the first batch again, acked, then the second
	s := c.f[1].Stats().Sym.Repl
	if s.Resends != 1 || s.InFlight != 0 || s.Queued != 0 {
		t.Errorf("n1: %+v, want 1 resend, nothing queued or in flight", s)
	}
	if r, _ := c.f[2].sym.replicas.get(k, c.now); r.state != StateAssured {
		t.Errorf("n2's replica after the resend %+v, want assured", r)
	}
	// A batch that arrives after a newer one (a resend overtaken) is
	// stale for the flows the newer one carried.
	old, _ := (&SyncBatch{Seq: 1, Records: []SyncRecord{{Flow: k, State: StateUnreplied, Handler: 1, Expires: 30000}}}).MarshalBinary()
	c.f[2].StepSync(TunnelHeader{Type: TypeSync, Sender: 1, Receiver: 2, Boot: 0}, old, c.now)
	if r, _ := c.f[2].sym.replicas.get(k, c.now); r.state != StateAssured {
		t.Errorf("n2's replica after an old batch %+v, want assured", r)
	}
	if st := c.f[2].Stats().Sym.Repl.Stale; st != 1 {
		t.Errorf("n2 counted %d stale records, want 1", st)
	}
}

// TestReplicationBounds: the queue, the window and the replica store
// are capped; what goes beyond is counted.
func TestReplicationBounds(t *testing.T) {
	c := newSymCluster(t, func(cfg *Config) { cfg.MaxSyncQueue = 250; cfg.SyncWindow = 2; cfg.MaxReplicas = 60 })
	for p := uint16(1); p <= 300; p++ {
		c.f[1].Decide(udp(client, server, 10000+p, 7000, 10), ext, int_, 0, 0, c.now)
	}
	s := c.f[1].Stats().Sym.Repl
	if s.Queued != 250 || s.Overflow == 0 {
		t.Fatalf("n1: %+v, want 250 queued and the rest counted as overflow", s)
	}
	ds, _ := c.f[1].SyncMessages(c.now, nil)
	if len(ds) != 4 || c.f[1].Stats().Sym.Repl.InFlight != 4 {
		t.Errorf("%d batches sent, want 2 per peer (window 2)", len(ds))
	}
	c.now += int64(DefaultSyncResend) // those four were not delivered: resent
	c.pumpSync(nil)
	for id := uint16(2); id <= 3; id++ {
		if s := c.f[id].Stats().Sym.Repl; s.Replicas != 60 || s.Refused == 0 {
			t.Errorf("n%d: %+v, want 60 replicas (the cap) and refusals counted", id, s)
		}
	}
}

// TestRefreshShortTimeout: a UDP flow (30 s unreplied, 120 s assured) is
// replicated again every quarter of its timeout while active, and by the
// sweep when idle, so its replicas outlive it.
func TestRefreshShortTimeout(t *testing.T) {
	c := newSymCluster(t, nil)
	sp := c.portWithOwners(protoUDP, 7000, 2, 3)
	k, _ := keyOf(protoUDP, client.As4(), server.As4(), sp, 7000)
	out := udp(client, server, sp, 7000, 10)
	c.send(1, out, ext, int_)
	c.pumpSync(nil)
	for i := 0; i < 12; i++ { // a minute of a packet every 5 s
		c.now += 5 * sec
		c.send(1, out, ext, int_)
		c.pumpSync(nil)
	}
	if _, ok := c.f[2].sym.replicas.get(k, c.now); !ok {
		t.Fatal("the replica of an active flow expired")
	}
	// Idle: the handler's sweep refreshes it until the flow expires.
	for i := 0; i < 25; i++ {
		c.now += sec
		c.f[1].Sweep(c.now)
		c.pumpSync(nil)
		if _, ok := c.f[2].sym.replicas.get(k, c.now); !ok {
			t.Fatalf("the replica expired %d s into the idle time, before the flow", i+1)
		}
	}
}

// TestAdoption: the handler of an established TCP flow dies; the
// flow's next packets, arriving at the surviving nodes from either side,
// go to the flow's authoritative node, which adopts the flow from its
// replica and passes them; new inbound flows are still refused; the
// adopter replicates to its standby.
func TestAdoption(t *testing.T) {
	for _, owners := range [][2]uint16{{2, 3}, {3, 2}, {1, 2}, {1, 3}, {2, 1}} {
		c := newSymCluster(t, nil)
		sp := c.portWithOwners(protoTCP, 80, owners[0], owners[1])
		k, _ := keyOf(protoTCP, client.As4(), server.As4(), sp, 80)
		c.send(1, tcp(client, server, sp, 80, tcpSYN), ext, int_)
		c.send(2, tcp(server, client, 80, sp, tcpSYN|tcpACK), int_, ext)
		c.send(1, tcp(client, server, sp, 80, tcpACK), ext, int_)
		c.pumpSync(nil)
		c.now += sec
		c.kill(1)
		auth, _ := c.dir.Lookup(k)
		for _, at := range []uint16{2, 3} {
			for _, p := range []struct {
				ip      []byte
				in, out int
			}{
				{tcp(client, server, sp, 80, tcpACK), ext, int_},
				{tcp(server, client, 80, sp, tcpACK), int_, ext},
			} {
				path := c.send(at, p.ip, p.in, p.out)
				last := path[len(path)-1]
				if !last.Pass || last.Node != auth || len(path) > 2 {
					t.Errorf("owners %v: a packet at n%d after n1 died: %v, want passed by n%d, the new authoritative node", owners, at, path, auth)
				}
			}
		}
		if n := c.f[auth].Stats().Sym.Repl.Adoptions; n != 1 {
			t.Errorf("owners %v: n%d adopted %d flows, want 1", owners, auth, n)
		}
		fl := c.f[auth].Flows(c.now, 0)
		if len(fl) != 1 || fl[0].State != StateEstablished || fl[0].Src.Addr() != client {
			t.Errorf("owners %v: n%d's flows %+v, want the adopted flow, established, from the client", owners, auth, fl)
		}
		c.pumpSync(nil)
		other := 5 - auth // 2 ↔ 3
		if r, ok := c.f[other].sym.replicas.get(k, c.now); !ok || r.handler != auth {
			t.Errorf("owners %v: n%d (standby) holds %+v (%v), want the adopter's replica", owners, other, r, ok)
		}
		// The filter still refuses a new inbound flow.
		if path := c.send(2, tcp(server, client, 80, 9000, tcpSYN), int_, ext); path[len(path)-1].Pass {
			t.Errorf("owners %v: a new inbound connection passed after the take-over: %v", owners, path)
		}
	}
}

// TestAuthoritativeLost: the authoritative node of a flow dies; its
// standby, which holds the replica, sends a packet arriving without
// state to the live handler at once, and the handler replicates to the
// new owners on its next packet.
func TestAuthoritativeLost(t *testing.T) {
	c := newSymCluster(t, nil)
	sp := c.portWithOwners(protoUDP, 7000, 3, 2)
	k, _ := keyOf(protoUDP, client.As4(), server.As4(), sp, 7000)
	c.send(1, udp(client, server, sp, 7000, 10), ext, int_)
	c.pumpSync(nil)
	// n2 never registered it (the register went to n3); only its replica
	// says who handles the flow.
	if h := c.f[2].sym.reg.get(k, c.now); h != 0 {
		t.Fatalf("n2's registry has %d", h)
	}
	c.kill(3)
	if a, _ := c.dir.Lookup(k); a != 2 {
		t.Fatalf("after n3: authoritative n%d, want n2", a)
	}
	if diff := cmp.Diff([]hop{{2, false, 1}, {1, true, 0}}, c.send(2, udp(server, client, 7000, sp, 10), int_, ext)); diff != "" {
		t.Errorf("a reply at n2 (-want +got):\n%s", diff)
	}
	if n := c.f[2].Stats().Sym.Repl.Adoptions; n != 0 {
		t.Errorf("n2 adopted %d flows of a live handler", n)
	}
	before := c.f[1].Stats().Sym.Repl.Records
	c.now += sec
	c.send(1, udp(client, server, sp, 7000, 10), ext, int_)
	c.pumpSync(nil)
	if after := c.f[1].Stats().Sym.Repl.Records; after != before+1 {
		t.Errorf("n1 sent %d records after the new directory, want 1 (to n2)", after-before)
	}
}

// TestResyncOnlyMovedRows: after a member leaves, only the flows whose
// authoritative node or standby changed are registered and replicated
// again; the others are not sent.
func TestResyncOnlyMovedRows(t *testing.T) {
	c := newSymCluster(t, nil)
	stay := c.portWithOwners(protoUDP, 7000, 2, 1) // n3 ranks neither first nor second
	move := c.portWithOwners(protoUDP, 7000, 3, 2) // n3 is authoritative
	for _, p := range []uint16{stay, move} {
		c.send(1, udp(client, server, p, 7000, 10), ext, int_)
	}
	c.pumpSync(nil)
	before := c.f[1].Stats().Sym.Repl.Records
	c.now += sec
	c.kill(3)
	c.f[1].Resync(c.now)
	for _, p := range []uint16{stay, move} {
		c.send(1, udp(client, server, p, 7000, 10), ext, int_)
	}
	c.pumpSync(nil)
	// The moved flow: to n2, its new authoritative node (n1, its new
	// standby, is the handler): one record.
	if got := c.f[1].Stats().Sym.Repl.Records - before; got != 1 {
		t.Errorf("%d records after n3 left, want 1 (the moved flow, to n2)", got)
	}
}

// TestAdoptionAfterRestart: the handler restarts faster than the ring
// notices (it stays a member) and has lost its flows; the flow's
// authoritative node hears its new boot and adopts the flow when its
// next packet arrives, here from the restarted node itself.
func TestAdoptionAfterRestart(t *testing.T) {
	c := newSymCluster(t, nil)
	sp := c.portWithOwners(protoTCP, 80, 2, 3)
	c.send(1, tcp(client, server, sp, 80, tcpSYN), ext, int_)
	c.send(1, tcp(server, client, 80, sp, tcpSYN|tcpACK), int_, ext)
	c.send(1, tcp(client, server, sp, 80, tcpACK), ext, int_)
	c.pumpSync(nil)
	for _, f := range c.f {
		f.PeerBoot(1, 0, c.now) // the boot the replicas came from (pumpSync's)
	}
	c.f[1] = newFilter(t, func(cfg *Config) { cfg.Self = 1 }) // restarted: empty
	c.f[1].SetDirectory(c.dir)
	mid := tcp(client, server, sp, 80, tcpACK)
	if got := c.send(1, mid, ext, int_); !cmp.Equal(got, []hop{{1, false, 2}, {2, false, 0}}) {
		t.Fatalf("before n2 heard the new boot: %v, want n1 → n2, dropped there", got)
	}
	c.f[2].PeerBoot(1, 1, c.now)
	c.f[3].PeerBoot(1, 1, c.now)
	if got := c.send(1, mid, ext, int_); !cmp.Equal(got, []hop{{1, false, 2}, {2, true, 0}}) {
		t.Errorf("after n2 heard n1's new boot: %v, want n1 → n2, passed (adopted)", got)
	}
	if n := c.f[2].Stats().Sym.Repl.Adoptions; n != 1 {
		t.Errorf("n2 adopted %d flows, want 1", n)
	}
}

// TestBulkFillAfterRestart: a node that handled flows as their
// authoritative node restarts faster than the ring notices (the rolling
// restart): it asks the others for its rows (its fill), the rows'
// standby copies it the replicas (bulk), and the restarted node,
// authoritative again, adopts its former flows from them when their
// packets come.
func TestBulkFillAfterRestart(t *testing.T) {
	c := newSymCluster(t, nil)
	sp := c.portWithOwners(protoTCP, 80, 2, 3)
	c.send(2, tcp(client, server, sp, 80, tcpSYN), ext, int_) // n2: handler and authoritative node
	c.send(2, tcp(server, client, 80, sp, tcpSYN|tcpACK), int_, ext)
	c.send(2, tcp(client, server, sp, 80, tcpACK), ext, int_)
	c.pumpSync(nil)
	c.f[3].PeerBoot(2, 0, c.now)
	c.f[2] = newFilter(t, func(cfg *Config) { cfg.Self = 2 }) // restarted: empty
	c.f[2].SetDirectory(c.dir)
	c.f[2].StartFill()
	c.f[3].PeerBoot(2, 1, c.now) // its first datagram after the restart
	c.pumpSync(nil)
	if s := c.f[2].Stats().Sym.Repl; s.BulkRcvd != 1 || s.Replicas != 1 || s.Fill.Filling || s.Fill.Fills != 1 || s.Fill.TimedOut {
		t.Fatalf("n2 after the fill: %+v, want 1 replica received in bulk, filled without timeout", s)
	}
	if got := c.send(1, tcp(server, client, 80, sp, tcpACK), int_, ext); !cmp.Equal(got, []hop{{1, false, 2}, {2, true, 0}}) {
		t.Errorf("a packet of the flow after the restart: %v, want n1 → n2, passed (adopted)", got)
	}
	if n := c.f[2].Stats().Sym.Repl.Adoptions; n != 1 {
		t.Errorf("n2 adopted %d flows, want 1", n)
	}
}

// TestResendBackoff: a batch never acknowledged is sent again after
// SyncResend, then after twice as long each time.
func TestResendBackoff(t *testing.T) {
	c := newSymCluster(t, nil)
	sp := c.portWithOwners(protoUDP, 7000, 2, 3)
	c.send(1, udp(client, server, sp, 7000, 10), ext, int_)
	toN2 := func(d SyncDatagram, _ uint16) bool { return d.To == 2 } // n2 hears nothing
	c.pumpSync(toN2)
	r := int64(DefaultSyncResend)
	start := c.now
	for i, wait := range []int64{r, 2 * r, 4 * r, 8 * r} {
		_, next := c.f[1].SyncMessages(c.now, nil)
		if next != c.now+wait {
			t.Fatalf("resend %d due %d ns after the last, want %d", i+1, next-c.now, wait)
		}
		c.now = next
		c.pumpSync(toN2)
	}
	if s := c.f[1].Stats().Sym.Repl; s.Resends != 4 {
		t.Errorf("%d resends in %v, want 4", s.Resends, c.now-start)
	}
}

// TestGiveBackAfterFlap: a handler dropped from the membership for a
// moment (it never stopped: same boot; it was alone meanwhile) has its
// flow adopted by the flow's authoritative node; once it is a member
// again, it registers the flow again and the adopter gives the flow
// back: later packets go to the handler again, one handler per flow.
func TestGiveBackAfterFlap(t *testing.T) {
	c := newSymCluster(t, nil)
	sp := c.portWithOwners(protoTCP, 80, 2, 3)
	c.send(1, tcp(client, server, sp, 80, tcpSYN), ext, int_)
	c.send(1, tcp(server, client, 80, sp, tcpSYN|tcpACK), int_, ext)
	c.send(1, tcp(client, server, sp, 80, tcpACK), ext, int_)
	c.pumpSync(nil)
	for _, f := range c.f {
		f.PeerBoot(1, 0, c.now) // the boot of pump's and pumpSync's datagrams
	}
	full := c.dir
	n1 := c.f[1]
	c.kill(1) // n2 and n3 drop n1 for a moment; n1 keeps its flow
	var ck [32]byte
	ck[0] = 7
	key, _ := DirectoryKey(ck[:])
	n1.SetDirectory(NewDirectory(key, []uint16{1})) // n1 alone meanwhile
	reply := tcp(server, client, 80, sp, tcpACK)
	if got := c.send(2, reply, int_, ext); !cmp.Equal(got, []hop{{2, true, 0}}) {
		t.Fatalf("during the flap: %v, want adopted and passed at n2", got)
	}
	c.f[1], c.dir = n1, full
	for _, f := range c.f {
		f.SetDirectory(full)
	}
	if got := c.send(1, tcp(client, server, sp, 80, tcpACK), ext, int_); !cmp.Equal(got, []hop{{1, true, 0}}) {
		t.Errorf("n1's next packet: %v, want passed at n1 (which registers the flow again)", got)
	}
	if got := c.send(2, reply, int_, ext); !cmp.Equal(got, []hop{{2, false, 1}, {1, true, 0}}) {
		t.Errorf("next packet: %v, want n2 → n1, the handler again", got)
	}
	s := c.f[2].Stats()
	if s.Sym.Repl.GivenBack != 1 || s.Flows != 0 {
		t.Errorf("n2: given back %d, tracks %d flows; want 1 and 0", s.Sym.Repl.GivenBack, s.Flows)
	}
}

// TestLagBucket: a lag lands in the bucket whose bound is the first above
// it (bounds exclusive); past the last bound, the last bucket; the status
// reads the quantile back as that bucket's bound.
func TestLagBucket(t *testing.T) {
	for _, c := range []struct {
		us   int64
		want int
	}{{0, 0}, {49, 0}, {50, 1}, {99, 1}, {999, 14}, {1000, 15}, {1001, 15}, {63999, len(LagBoundsUs) - 1},
		{64000, len(LagBoundsUs)}, {1 << 40, len(LagBoundsUs)}} {
		if got := lagBucket(c.us); got != c.want {
			t.Errorf("lagBucket(%d) = %d, want %d", c.us, got, c.want)
		}
	}
	for i := 1; i < len(LagBoundsUs); i++ {
		if LagBoundsUs[i] <= LagBoundsUs[i-1] {
			t.Fatalf("bounds not increasing at %d: %v", i, LagBoundsUs)
		}
	}
}

// TestTakeSyncAck: the receiver of a batch acknowledges it at once
// through TakeSyncAck (the driver's receiving goroutine), which takes the
// ack off what SyncMessages sends, and stops waking the sync goroutine
// for acks; the sender's batch is then acknowledged.
func TestTakeSyncAck(t *testing.T) {
	c := newSymCluster(t, nil)
	sp := c.portWithOwners(protoTCP, 80, 2, 3)
	c.send(1, tcp(client, server, sp, 80, tcpSYN), ext, int_)
	ds, _ := c.f[1].SyncMessages(c.now, nil)
	var toN2 *SyncDatagram
	for i := range ds {
		if ds[i].To == 2 && ds[i].Type == TypeSync {
			toN2 = &ds[i]
		}
	}
	if toN2 == nil {
		t.Fatalf("n1 sent %+v, want a batch for n2", ds)
	}
	if b := c.f[2].TakeSyncAck(1, nil); len(b) != 0 {
		t.Fatalf("ack % x before any batch", b)
	}
	select {
	case <-c.f[2].SyncReady():
	default:
	}
	c.f[2].StepSync(TunnelHeader{Type: TypeSync, Sender: 1, Receiver: 2}, bytes.Clone(toN2.Payload), c.now)
	ack := c.f[2].TakeSyncAck(1, nil)
	var a SyncAck
	if err := a.UnmarshalBinary(ack); err != nil || len(a.Seqs) != 1 {
		t.Fatalf("ack % x: %v %v, want one sequence number", ack, a.Seqs, err)
	}
	// A second batch: owing its ack no longer signals SyncReady.
	c.f[2].StepSync(TunnelHeader{Type: TypeSync, Sender: 1, Receiver: 2}, bytes.Clone(toN2.Payload), c.now)
	select {
	case <-c.f[2].SyncReady():
		t.Error("owing an ack woke the sync goroutine although the driver takes acks")
	default:
	}
	if b := c.f[2].TakeSyncAck(1, nil); len(b) == 0 {
		t.Error("the second batch's ack was not taken")
	}
	if ds, _ := c.f[2].SyncMessages(c.now, nil); len(ds) != 0 {
		t.Errorf("n2 still sends %+v after its acks were taken", ds)
	}
	before := c.f[1].Stats().Sym.Repl.Acked
	c.f[1].StepSync(TunnelHeader{Type: TypeSyncAck, Sender: 2, Receiver: 1}, ack, c.now)
	if got := c.f[1].Stats().Sym.Repl.Acked; got != before+1 {
		t.Errorf("n1 acked %d batches, want %d", got, before+1)
	}
}

// TestQueueWakesOnlyWhenDue: a change queued while a batch is in flight to
// its peer does not wake the sync goroutine (it could send nothing: the
// batch is not full); the ack does, and the change goes then.
func TestQueueWakesOnlyWhenDue(t *testing.T) {
	c := newSymCluster(t, nil)
	sp := c.portWithOwners(protoTCP, 80, 2, 3)
	drain := func() bool {
		select {
		case <-c.f[1].SyncReady():
			return true
		default:
			return false
		}
	}
	c.send(1, tcp(client, server, sp, 80, tcpSYN), ext, int_)
	if !drain() {
		t.Fatal("the first change did not wake the sync goroutine")
	}
	ds, _ := c.f[1].SyncMessages(c.now, nil)
	if len(ds) != 2 {
		t.Fatalf("n1 sent %d datagrams, want a batch to n2 and to n3", len(ds))
	}
	c.send(1, tcp(server, client, 80, sp, tcpSYN|tcpACK), int_, ext)
	c.send(1, tcp(client, server, sp, 80, tcpACK), ext, int_)
	if drain() {
		t.Error("a change queued behind a batch in flight woke the sync goroutine")
	}
	if ds, _ := c.f[1].SyncMessages(c.now, nil); len(ds) != 0 {
		t.Fatalf("n1 sent %+v with batches in flight (Nagle's rule)", ds)
	}
	for _, d := range ds {
		c.f[d.To].StepSync(TunnelHeader{Type: d.Type, Sender: 1, Receiver: d.To}, bytes.Clone(d.Payload), c.now)
	}
	for id := uint16(2); id <= 3; id++ {
		ack := c.f[id].TakeSyncAck(1, nil)
		c.f[1].StepSync(TunnelHeader{Type: TypeSyncAck, Sender: id, Receiver: 1}, ack, c.now)
	}
	if !drain() {
		t.Error("the ack did not wake the sync goroutine for the change waiting")
	}
	ds, _ = c.f[1].SyncMessages(c.now, nil)
	if len(ds) != 2 {
		t.Errorf("after the acks n1 sent %d datagrams, want the waiting change to n2 and n3", len(ds))
	}
}

// TestSynRecvNotSentAlone: the responder's SYN-ACK (syn_recv) does not
// send a record by itself; the initiator's ACK (established) does.
func TestSynRecvNotSentAlone(t *testing.T) {
	c := newSymCluster(t, nil)
	sp := c.portWithOwners(protoTCP, 80, 2, 3)
	k, _ := keyOf(protoTCP, client.As4(), server.As4(), sp, 80)
	c.send(1, tcp(client, server, sp, 80, tcpSYN), ext, int_)
	c.pumpSync(nil)
	records := c.f[1].Stats().Sym.Repl.Records
	c.send(1, tcp(server, client, 80, sp, tcpSYN|tcpACK), int_, ext)
	c.pumpSync(nil)
	if got := c.f[1].Stats().Sym.Repl.Records; got != records {
		t.Errorf("syn_recv sent %d records", got-records)
	}
	if r, _ := c.f[2].sym.replicas.get(k, c.now); r.state != StateSynSent {
		t.Errorf("replica at n2 %v after the SYN-ACK, want syn_sent", r.state)
	}
	c.send(1, tcp(client, server, sp, 80, tcpACK), ext, int_)
	c.pumpSync(nil)
	for id := uint16(2); id <= 3; id++ {
		if r, _ := c.f[id].sym.replicas.get(k, c.now); r.state != StateEstablished {
			t.Errorf("replica at n%d %v after the ACK, want established", id, r.state)
		}
	}
}
