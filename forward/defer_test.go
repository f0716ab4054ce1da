package forward

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const msec = int64(time.Millisecond)

func deferCluster(t *testing.T, wait time.Duration) *symCluster {
	return newSymCluster(t, func(c *Config) { c.Defer = wait })
}

// decide gives ip to node at as received on link in, leaving the tunnel's
// messages queued (the race the deferral closes is in what is not yet
// delivered).
func (c *symCluster) decide(at uint16, ip []byte, in, out int) (bool, uint16, uint64) {
	return c.f[at].Decide(ip, in, out, 0, 0, c.now)
}

// TestDeferHoldUntilAck: the first packet of a flow whose authoritative
// node is another node is held; it is released by the ack, which comes
// only after the authoritative node took the register, so the reply
// arriving there right after the release finds the handler. A flow this
// node is authoritative for is not held; later packets are not held.
func TestDeferHoldUntilAck(t *testing.T) {
	for auth := uint16(1); auth <= 3; auth++ {
		c := deferCluster(t, 10*time.Millisecond)
		sp := c.portWithAuth(protoUDP, 7000, auth)
		c.now = sec
		pass, to, hold := c.decide(1, udp(client, server, sp, 7000, 10), ext, int_)
		if !pass || to != 0 || (hold != 0) != (auth != 1) {
			t.Fatalf("auth n%d: first packet: pass %v to %d hold %#x", auth, pass, to, hold)
		}
		if auth == 1 {
			if got, next := c.f[1].Released(c.now, nil); len(got) != 0 || next != 0 {
				t.Errorf("auth n1: released %v, next %d; want nothing held", got, next)
			}
			continue
		}
		got, next := c.f[1].Released(c.now, nil)
		if len(got) != 0 || next != c.now+10*msec {
			t.Errorf("auth n%d: before the ack: released %v, next %d; want none, next %d", auth, got, next, c.now+10*msec)
		}
		// A second packet of the flow passes at once (only the first is held).
		if pass, _, h := c.decide(1, udp(client, server, sp, 7000, 10), ext, int_); !pass || h != 0 {
			t.Errorf("auth n%d: second packet: pass %v hold %#x", auth, pass, h)
		}
		select {
		case <-c.f[1].DeferReady():
			t.Fatalf("auth n%d: ready before any ack", auth)
		default:
		}
		c.now += 300 * int64(time.Microsecond)
		c.pump() // register to the authoritative node, its ack back
		select {
		case <-c.f[1].DeferReady():
		default:
			t.Errorf("auth n%d: DeferReady not signalled by the ack", auth)
		}
		got, next = c.f[1].Released(c.now, nil)
		if diff := cmp.Diff([]uint64{hold}, got); diff != "" || next != 0 {
			t.Errorf("auth n%d: after the ack: next %d, released (-want +got):\n%s", auth, next, diff)
		}
		// The reply arriving at the authoritative node now goes to the
		// handler, which passes it.
		p := c.send(auth, udp(server, client, 7000, sp, 10), int_, ext)
		if last := p[len(p)-1]; !last.Pass || last.Node != 1 {
			t.Errorf("auth n%d: reply after the release: %v, want passed by n1", auth, p)
		}
		st := c.f[1].Stats().Sym.Defer
		var lat [deferBuckets]uint64
		lat[9] = 1 // 300 µs: under 512 µs
		want := DeferStats{Deferred: 1, ReleasedAck: 1, AckLatency: lat}
		if diff := cmp.Diff(want, st); diff != "" {
			t.Errorf("auth n%d: stats (-want +got):\n%s", auth, diff)
		}
		if a := c.f[auth].Stats().Sym.Acked; a != 1 {
			t.Errorf("auth n%d: %d acks sent, want 1", auth, a)
		}
	}
}

// TestDeferTimeout: without an ack the packet goes after Config.Defer,
// not before; an ack that comes later releases nothing more.
func TestDeferTimeout(t *testing.T) {
	c := deferCluster(t, 10*time.Millisecond)
	sp := c.portWithAuth(protoUDP, 7000, 2)
	c.now = sec
	_, _, hold := c.decide(1, udp(client, server, sp, 7000, 10), ext, int_)
	if hold == 0 {
		t.Fatal("not held")
	}
	if got, next := c.f[1].Released(c.now+10*msec-1, nil); len(got) != 0 || next != c.now+10*msec {
		t.Errorf("1 ns early: released %v next %d", got, next)
	}
	if got, next := c.f[1].Released(c.now+10*msec, nil); !cmp.Equal(got, []uint64{hold}) || next != 0 {
		t.Errorf("at the deadline: released %v next %d, want [%#x] 0", got, next, hold)
	}
	c.now += 11 * msec
	c.pump() // the late ack
	if got, _ := c.f[1].Released(c.now, nil); len(got) != 0 {
		t.Errorf("the late ack released %v again", got)
	}
	st := c.f[1].Stats().Sym.Defer
	if diff := cmp.Diff(DeferStats{Deferred: 1, ReleasedTimeout: 1}, st); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestDeferOverflow: at MaxDeferred held, a new flow's first packet passes
// at once and is counted; releasing makes room again.
func TestDeferOverflow(t *testing.T) {
	c := deferCluster(t, 10*time.Millisecond)
	held := 0
	for p := uint16(1000); held < MaxDeferred+1; p++ {
		k, _ := keyOf(protoUDP, client.As4(), server.As4(), p, 7000)
		if a, _ := c.dir.Lookup(k); a == 1 {
			continue
		}
		pass, _, hold := c.decide(1, udp(client, server, p, 7000, 1), ext, int_)
		if !pass || (hold == 0) != (held == MaxDeferred) {
			t.Fatalf("flow %d: pass %v hold %#x", held, pass, hold)
		}
		held++
	}
	st := c.f[1].Stats().Sym.Defer
	if st.Overflow != 1 || st.Held != MaxDeferred || st.Deferred != MaxDeferred {
		t.Errorf("stats %+v, want 1 overflow, %d held", st, MaxDeferred)
	}
	if got, _ := c.f[1].Released(c.now+10*msec, nil); len(got) != MaxDeferred {
		t.Errorf("released %d at the deadline, want %d", len(got), MaxDeferred)
	}
}

// TestDeferOff: with Config.Defer 0 nothing is held.
func TestDeferOff(t *testing.T) {
	c := deferCluster(t, 0)
	sp := c.portWithAuth(protoUDP, 7000, 2)
	if pass, _, hold := c.decide(1, udp(client, server, sp, 7000, 10), ext, int_); !pass || hold != 0 {
		t.Errorf("pass %v hold %#x, want passed, not held", pass, hold)
	}
	if got, next := c.f[1].Released(c.now+sec, nil); len(got) != 0 || next != 0 {
		t.Errorf("released %v next %d", got, next)
	}
}

// TestDeferNoAckWhenRefused: a register refused at MaxRegistry is not
// acknowledged (its packet waits for the timeout): an ack promises the
// authoritative node knows the handler.
func TestDeferNoAckWhenRefused(t *testing.T) {
	c := newSymCluster(t, func(cfg *Config) { cfg.Defer = 10 * time.Millisecond; cfg.MaxRegistry = 1 })
	var ports []uint16
	for p := uint16(1000); len(ports) < 2; p++ {
		if k, _ := keyOf(protoUDP, client.As4(), server.As4(), p, 7000); func() bool { a, _ := c.dir.Lookup(k); return a == 2 }() {
			ports = append(ports, p)
		}
	}
	for _, p := range ports {
		c.decide(1, udp(client, server, p, 7000, 1), ext, int_)
	}
	c.pump()
	if got, _ := c.f[1].Released(c.now, nil); len(got) != 1 {
		t.Errorf("released %d by ack, want 1 (the other register was refused)", len(got))
	}
	if st := c.f[2].Stats().Sym; st.Acked != 1 || st.RegistryRefused != 1 {
		t.Errorf("n2: %d acks, %d refused; want 1, 1", st.Acked, st.RegistryRefused)
	}
}

// TestDeferAllocs: holding and releasing a first packet allocates nothing
// in the deferral itself.
func TestDeferAllocs(t *testing.T) {
	d := newDeferrals(10 * time.Millisecond)
	k := tunnelFlow
	buf := make([]uint64, 0, MaxDeferred)
	now := int64(0)
	n := testing.AllocsPerRun(1000, func() {
		now += msec
		d.hold(k, now)
		d.ack(k, now)
		buf, _ = d.released(now, buf[:0])
	})
	if n != 0 {
		t.Errorf("%.1f allocations per hold, ack and release", n)
	}
}
