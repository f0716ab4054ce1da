package forward

import (
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
)

// symCluster is three filters with symmetric routing and one directory,
// joined by an ideal tunnel: what the router and the tunnel driver do,
// without sockets.
type symCluster struct {
	t     *testing.T
	f     map[uint16]*Filter
	dir   *Directory
	now   int64
	steps []TunnelHeader // registers and hints delivered, in order
}

func newSymCluster(t *testing.T, mod func(*Config)) *symCluster {
	var ck [32]byte
	ck[0] = 7
	key, err := DirectoryKey(ck[:])
	if err != nil {
		t.Fatal(err)
	}
	c := &symCluster{t: t, f: map[uint16]*Filter{}, dir: NewDirectory(key, []uint16{1, 2, 3})}
	for id := uint16(1); id <= 3; id++ {
		c.f[id] = newFilter(t, func(cfg *Config) {
			cfg.Self = id
			if mod != nil {
				mod(cfg)
			}
		})
		c.f[id].SetDirectory(c.dir)
	}
	return c
}

// hop is one node's decision on a packet: it passed (forwarded it out),
// redirected it to a node, or dropped it.
type hop struct {
	Node uint16
	Pass bool
	To   uint16
}

// send gives ip to node at as if received on link in and follows the
// redirects; after each decision the tunnel's registers and hints are
// delivered. It returns every node's decision in order.
func (c *symCluster) send(at uint16, ip []byte, in, out int) []hop {
	c.t.Helper()
	var path []hop
	from, hops := uint16(0), uint8(0)
	for node := at; ; {
		pass, to, _ := c.f[node].Decide(slices.Clone(ip), in, out, from, hops, c.now)
		path = append(path, hop{node, pass, to})
		c.pump()
		if pass || to == 0 {
			return path
		}
		if to == node {
			c.t.Fatalf("node %d redirected a packet to itself: %v", node, path)
		}
		if hops == MaxHops {
			c.t.Fatalf("a packet was redirected after %d hops: %v", hops, path)
		}
		from, hops, node = node, hops+1, to
	}
}

// pump delivers every queued register, hint and ack.
func (c *symCluster) pump() {
	for more := true; more; {
		more = false
		for id := uint16(1); id <= 3; id++ {
			if c.f[id] == nil {
				continue // dead (replicate_test.go's kill)
			}
			for _, m := range c.f[id].TunnelMessages(nil) {
				more = true
				m.Sender = id
				c.steps = append(c.steps, m)
				if to := c.f[m.Receiver]; to != nil {
					to.Step(m, c.now)
				}
			}
		}
	}
}

// portWithAuth returns a client port whose UDP or TCP flow to the server's
// port dport has node auth as its authoritative node.
func (c *symCluster) portWithAuth(proto uint8, dport uint16, auth uint16) uint16 {
	for p := uint16(20000); p < 30000; p++ {
		k, _ := keyOf(proto, client.As4(), server.As4(), p, dport)
		if a, _ := c.dir.Lookup(k); a == auth {
			return p
		}
	}
	c.t.Fatalf("no port with authoritative node %d", auth)
	return 0
}

// TestSymmetricSplit: the client's packets reach n1, the server's replies
// n2 (the two gateway VIPs on different nodes). For every choice of the
// flow's authoritative node, both directions are decided by n1, the
// handler; after the first reply, later replies go straight to n1.
func TestSymmetricSplit(t *testing.T) {
	for auth := uint16(1); auth <= 3; auth++ {
		c := newSymCluster(t, nil)
		sp := c.portWithAuth(protoUDP, 7000, auth)
		k, _ := keyOf(protoUDP, client.As4(), server.As4(), sp, 7000)

		if got := c.send(1, udp(client, server, sp, 7000, 10), ext, int_); !cmp.Equal(got, []hop{{1, true, 0}}) {
			t.Fatalf("auth n%d: first packet at n1: %v", auth, got)
		}
		var wantSteps []TunnelHeader
		if auth != 1 {
			wantSteps = append(wantSteps, TunnelHeader{Type: TypeRegister, Sender: 1, Receiver: auth, Handler: 1, Flow: k},
				TunnelHeader{Type: TypeAck, Sender: auth, Receiver: 1, Handler: 1, Flow: k})
		}
		if diff := cmp.Diff(wantSteps, c.steps); diff != "" {
			t.Errorf("auth n%d: registers (-want +got):\n%s", auth, diff)
		}
		c.steps = nil

		reply := udp(server, client, 7000, sp, 10)
		var want []hop
		switch auth {
		case 1: // n2 → n1, which is the handler
			want = []hop{{2, false, 1}, {1, true, 0}}
		case 2: // n2 is authoritative: straight to the registered handler
			want = []hop{{2, false, 1}, {1, true, 0}}
		case 3: // n2 → n3 → n1, and n3 hints n2
			want = []hop{{2, false, 3}, {3, false, 1}, {1, true, 0}}
		}
		c.now += sec
		if diff := cmp.Diff(want, c.send(2, reply, int_, ext)); diff != "" {
			t.Errorf("auth n%d: first reply (-want +got):\n%s", auth, diff)
		}
		if auth == 3 {
			want = []hop{{2, false, 1}, {1, true, 0}}
			if diff := cmp.Diff([]TunnelHeader{{Type: TypeHint, Sender: 3, Receiver: 2, Handler: 1, Flow: k}}, c.steps); diff != "" {
				t.Errorf("hint (-want +got):\n%s", diff)
			}
		}
		c.now += sec
		if diff := cmp.Diff(want, c.send(2, reply, int_, ext)); diff != "" {
			t.Errorf("auth n%d: second reply (-want +got):\n%s", auth, diff)
		}
		// The state is n1's alone: the flow is assured there, unknown
		// elsewhere.
		if fl := c.f[1].Flows(c.now, 0); len(fl) != 1 || fl[0].State != StateAssured || fl[0].PacketsReply != 2 {
			t.Errorf("auth n%d: n1's flows %+v, want one assured flow with 2 replies", auth, fl)
		}
		for _, id := range []uint16{2, 3} {
			if fl := c.f[id].Flows(c.now, 0); len(fl) != 0 {
				t.Errorf("auth n%d: n%d tracks %+v, want nothing", auth, id, fl)
			}
		}
	}
}

// TestSymmetricTCP: a TCP connection through split owners completes and
// closes with its state at the handler; a connection the server opens
// stays refused wherever its row lives, and is counted as a rule drop.
func TestSymmetricTCP(t *testing.T) {
	for auth := uint16(1); auth <= 3; auth++ {
		c := newSymCluster(t, nil)
		sp := c.portWithAuth(protoTCP, 80, auth)
		steps := []struct {
			at       uint16
			ip       []byte
			in, out  int
			handled  bool
			lastNode uint16
		}{
			{1, tcp(client, server, sp, 80, tcpSYN), ext, int_, true, 1},
			{2, tcp(server, client, 80, sp, tcpSYN|tcpACK), int_, ext, true, 1},
			{1, tcp(client, server, sp, 80, tcpACK), ext, int_, true, 1},
			{2, tcp(server, client, 80, sp, tcpACK), int_, ext, true, 1},
			{1, tcp(client, server, sp, 80, tcpFIN|tcpACK), ext, int_, true, 1},
			{2, tcp(server, client, 80, sp, tcpFIN|tcpACK), int_, ext, true, 1},
			{1, tcp(client, server, sp, 80, tcpACK), ext, int_, true, 1},
		}
		for i, s := range steps {
			c.now += sec
			p := c.send(s.at, s.ip, s.in, s.out)
			last := p[len(p)-1]
			if last.Pass != s.handled || last.Node != s.lastNode || len(p) > 3 {
				t.Errorf("auth n%d: step %d: %v", auth, i, p)
			}
		}
		if fl := c.f[1].Flows(c.now, 0); len(fl) != 1 || fl[0].State != StateTimeWait {
			t.Errorf("auth n%d: n1's flows %+v, want one in time_wait", auth, fl)
		}

		// The server opens a connection to the client: n2 cannot start it
		// (no rule from int), nobody handles it, it is dropped.
		cp := c.portWithAuth(protoTCP, 9000, auth)
		p := c.send(2, tcp(server, client, 9000, cp, tcpSYN), int_, ext)
		if last := p[len(p)-1]; last.Pass || last.To != 0 {
			t.Errorf("auth n%d: the server's SYN: %v, want dropped", auth, p)
		}
		var rules uint64
		for _, f := range c.f {
			rules += f.Stats().Drops[ReasonRule]
		}
		if rules != 1 {
			t.Errorf("auth n%d: %d rule drops over the cluster, want 1 (the server's SYN, once)", auth, rules)
		}
	}
}

// TestSymmetricTunnelledNeverStartsOrLoops: a packet that came through the
// tunnel never creates state and is never sent on at hops 2, nor sent
// back to where it came from.
func TestSymmetricTunnelledNeverStartsOrLoops(t *testing.T) {
	c := newSymCluster(t, nil)
	sp := c.portWithAuth(protoUDP, 7000, 3)
	ip := udp(client, server, sp, 7000, 10)
	// At n3 (authoritative) from n2, hops 1, nothing registered: dropped.
	if pass, to, _ := c.f[3].Decide(ip, ext, int_, 2, 1, 0); pass || to != 0 {
		t.Errorf("unknown flow at its authoritative node: pass %v to %d, want a drop", pass, to)
	}
	if got := c.f[3].Stats().Drops[ReasonNoHandler]; got != 1 {
		t.Errorf("no_handler drops %d, want 1", got)
	}
	// Register n1 as the handler; at hops 2 n3 still does not send it on.
	k, _ := keyOf(protoUDP, client.As4(), server.As4(), sp, 7000)
	c.f[3].Step(TunnelHeader{Type: TypeRegister, Sender: 1, Receiver: 3, Handler: 1, Flow: k}, 0)
	if pass, to, _ := c.f[3].Decide(ip, ext, int_, 2, 2, 0); pass || to != 0 {
		t.Errorf("hops 2 at the authoritative node: pass %v to %d, want a drop", pass, to)
	}
	// Sent by the handler itself (it lost the flow): not back to it.
	if pass, to, _ := c.f[3].Decide(ip, ext, int_, 1, 1, 0); pass || to != 0 {
		t.Errorf("from the registered handler: pass %v to %d, want a drop", pass, to)
	}
	// At hops 1 from n2: on to n1.
	if pass, to, _ := c.f[3].Decide(ip, ext, int_, 2, 1, 0); pass || to != 1 {
		t.Errorf("registered flow at its authoritative node: pass %v to %d, want to 1", pass, to)
	}
	for id, f := range c.f {
		if n := f.Stats().Flows; n != 0 {
			t.Errorf("n%d tracks %d flows after tunnelled packets only", id, n)
		}
	}
}

// TestSymmetricFirstPacketOfAFlowHandledElsewhere: a node that knows (a
// hint, or its own registry) that another node handles a flow sends even
// a valid first packet there instead of starting a second state.
func TestSymmetricFirstPacketOfAFlowHandledElsewhere(t *testing.T) {
	c := newSymCluster(t, func(cfg *Config) { cfg.Default = Accept }) // every flow may start anywhere
	sp := c.portWithAuth(protoUDP, 7000, 2)
	c.send(1, udp(client, server, sp, 7000, 10), ext, int_) // n1 handles, registered at n2
	if got := c.send(2, udp(server, client, 7000, sp, 10), int_, ext); !cmp.Equal(got, []hop{{2, false, 1}, {1, true, 0}}) {
		t.Errorf("reply at the authoritative node: %v, want it sent to the handler", got)
	}
	if n := c.f[2].Stats().Flows; n != 0 {
		t.Errorf("n2 tracks %d flows, want 0", n)
	}
}

// TestSymmetricBoundsAndExpiry: the registry refuses at its cap, hints
// expire after HintTTL and are forgotten when their handler leaves the
// membership; registers repeat after a quarter of RegistryTTL of activity
// and after a directory change.
func TestSymmetricBoundsAndExpiry(t *testing.T) {
	c := newSymCluster(t, func(cfg *Config) {
		cfg.MaxRegistry, cfg.MaxHints = 1, 1
		cfg.RegistryTTL, cfg.HintTTL = 40*time.Second, 5*time.Second
	})
	k1, _ := keyOf(protoUDP, client.As4(), server.As4(), 1, 2)
	k2, _ := keyOf(protoUDP, client.As4(), server.As4(), 3, 4)
	f := c.f[2]
	f.Step(TunnelHeader{Type: TypeRegister, Handler: 1, Flow: k1}, 0)
	f.Step(TunnelHeader{Type: TypeRegister, Handler: 1, Flow: k2}, 0)
	f.Step(TunnelHeader{Type: TypeHint, Handler: 3, Flow: k1}, 0)
	f.Step(TunnelHeader{Type: TypeHint, Handler: 3, Flow: k2}, 0)
	s := f.Stats().Sym
	if s.Registry != 1 || s.RegistryRefused != 1 || s.Hints != 1 || s.HintsRefused != 1 {
		t.Errorf("at the caps: %+v, want 1 held and 1 refused of each", s)
	}
	if h := f.sym.hints.get(k1, 5*sec-1); h != 3 {
		t.Errorf("hint before its TTL: %d, want 3", h)
	}
	if h := f.sym.hints.get(k1, 5*sec); h != 0 {
		t.Errorf("hint at its TTL: %d, want expired", h)
	}
	f.Step(TunnelHeader{Type: TypeHint, Handler: 3, Flow: k1}, 0)
	f.SetDirectory(NewDirectory([DirectoryKeyLen]byte{}, []uint16{1, 2}))
	if n := f.Stats().Sym.Hints; n != 0 {
		t.Errorf("%d hints after their handler left, want 0", n)
	}
	f.Sweep(40 * sec)
	if n := f.Stats().Sym.Registry; n != 0 {
		t.Errorf("registry holds %d after RegistryTTL, want 0", n)
	}

	// Re-registration at the handler: every quarter of the TTL (the
	// flow's own timeout, an hour here, is longer; replicate_test.go
	// covers the shorter one).
	c = newSymCluster(t, func(cfg *Config) { cfg.RegistryTTL = 40 * time.Second; cfg.Timeouts.UDP = time.Hour })
	ck := [32]byte{7}
	key, _ := DirectoryKey(ck[:])
	without2 := NewDirectory(key, []uint16{1, 3})
	sp := c.portWithAuth(protoUDP, 7000, 2)
	for ; ; sp++ { // authoritative n2, and n3 once n2 has left
		k, _ := keyOf(protoUDP, client.As4(), server.As4(), sp, 7000)
		a, _ := c.dir.Lookup(k)
		b, _ := without2.Lookup(k)
		if a == 2 && b == 3 {
			break
		}
	}
	out := udp(client, server, sp, 7000, 10)
	count := func() int {
		n := 0
		for _, m := range c.steps {
			if m.Type == TypeRegister {
				n++
			}
		}
		return n
	}
	c.send(1, out, ext, int_)
	c.now = 9 * sec
	c.send(1, out, ext, int_)
	if n := count(); n != 1 {
		t.Errorf("%d registers within a quarter of the TTL, want 1", n)
	}
	c.now = 10 * sec
	c.send(1, out, ext, int_)
	if n := count(); n != 2 {
		t.Errorf("%d registers after a quarter of the TTL, want 2", n)
	}
	// A new directory that leaves the flow's row where it was: no
	// register; one that moves it (n2 leaves): a register.
	c.f[1].SetDirectory(c.dir)
	c.send(1, out, ext, int_)
	if n := count(); n != 2 {
		t.Errorf("%d registers after a new directory with the row unmoved, want still 2", n)
	}
	c.dir = without2
	for _, f := range c.f {
		f.SetDirectory(c.dir)
	}
	c.send(1, out, ext, int_)
	if n := count(); n != 3 {
		t.Errorf("%d registers after a new directory that moved the row, want 3", n)
	}
}

// TestSymmetricOff: without Self the filter never redirects and Decide is
// Forward; with Self but through Pass (a router without a tunnel), no
// packet is redirected either.
func TestSymmetricOff(t *testing.T) {
	f := newFilter(t, nil)
	f.SetDirectory(NewDirectory([DirectoryKeyLen]byte{}, []uint16{1, 2}))
	if pass, to, _ := f.Decide(udp(server, client, 7000, 5000, 0), int_, ext, 0, 0, 0); pass || to != 0 {
		t.Errorf("without Self: pass %v to %d, want a drop", pass, to)
	}
	c := newSymCluster(t, nil)
	sp := c.portWithAuth(protoUDP, 7000, 3)
	if c.f[2].Pass(udp(server, client, 7000, sp, 0), int_, ext, 0) {
		t.Error("Pass passed a reply of an unknown flow")
	}
	if got := c.f[2].Stats().Sym.Redirects; got != 0 {
		t.Errorf("Pass redirected %d packets", got)
	}
}

// TestSymmetricDecideAllocs pins the packet path at no allocation: a
// tracked flow, and a redirect to the authoritative node.
func TestSymmetricDecideAllocs(t *testing.T) {
	c := newSymCluster(t, nil)
	sp := c.portWithAuth(protoUDP, 7000, 3)
	out := udp(client, server, sp, 7000, 10)
	back := udp(server, client, 7000, sp, 10)
	c.send(1, out, ext, int_)
	if n := testing.AllocsPerRun(1000, func() { c.f[1].Decide(out, ext, int_, 0, 0, 0) }); n != 0 {
		t.Errorf("tracked flow: %v allocations per packet", n)
	}
	if n := testing.AllocsPerRun(1000, func() { c.f[2].Decide(back, int_, ext, 0, 0, 0) }); n != 0 {
		t.Errorf("redirect: %v allocations per packet", n)
	}
}

// TestEntrySize: the registration fields fit the entry's padding.
func TestEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(entry{}); n != 64 {
		t.Errorf("entry is %d bytes, want 64", n)
	}
}

// TestSymmetricReplyAfterDirectoryChange: n2 has installed a directory
// that makes it the flow's authoritative node (here: n1 and n3 not yet
// filled, as at a cold start) before the handler (n1) re-registered
// there: the server's reply, unknown at n2, goes to the node
// authoritative before (n3), still a member, which knows the handler and
// sends it on. Before this, n2 dropped it (no_state) and the client's
// connect waited for its SYN's retransmission. A node that is no longer
// a member is never sent to (TestAdoption).
func TestSymmetricReplyAfterDirectoryChange(t *testing.T) {
	c := newSymCluster(t, nil)
	var ck [32]byte
	ck[0] = 7
	key, err := DirectoryKey(ck[:])
	if err != nil {
		t.Fatal(err)
	}
	next := NewFillingDirectory(key, []uint16{1, 2, 3}, []uint16{1, 3})
	sp := uint16(0)
	for p := uint16(20000); p < 30000 && sp == 0; p++ {
		k, _ := keyOf(protoTCP, client.As4(), server.As4(), p, 80)
		if a, _ := c.dir.Lookup(k); a == 3 {
			if b, _ := next.Lookup(k); b == 2 {
				sp = p
			}
		}
	}
	if sp == 0 {
		t.Fatal("no port authoritative on n3 before and on n2 after")
	}
	c.now += sec
	if p := c.send(1, tcp(client, server, sp, 80, tcpSYN), ext, int_); !p[len(p)-1].Pass {
		t.Fatalf("the client's SYN at n1: %v", p)
	}
	c.f[2].SetDirectory(next) // n2 alone has seen the change
	c.now += sec
	p := c.send(2, tcp(server, client, 80, sp, tcpSYN|tcpACK), int_, ext)
	want := []hop{{2, false, 3}, {3, false, 1}, {1, true, 0}}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("the server's SYN-ACK (-want +got):\n%s", diff)
	}
	if got := c.f[2].Stats().Sym.ViaPrevious; got != 1 {
		t.Errorf("n2 counted %d packets sent to the previous authoritative node, want 1", got)
	}
	// A packet nobody knows still ends at the previous node: one hop.
	p = c.send(2, tcp(server, client, 80, sp+1, tcpACK), int_, ext)
	if last := p[len(p)-1]; last.Pass || len(p) > 2 {
		t.Errorf("an unknown packet: %v, want dropped after at most one hop", p)
	}
}
