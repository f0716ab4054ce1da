package ringnet_test

import (
	"bytes"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ring/ringnet"
	"github.com/ringway/ringway/ring/ringnet/ringnettest"
)

// recordingCores is realCores whose Holders record, for node watch, every
// member list the core hands them (it accepted, regenerated or formed a
// ring with those members) while *rec is set.
func recordingCores(n int, cores []*ring.Node, watch ringnet.NodeID, mu *sync.Mutex, rec *bool, seen *[][]ring.NodeID) func(id ringnet.NodeID) ringnet.Core {
	return func(id ringnet.NodeID) ringnet.Core {
		cfg := ring.DefaultConfig()
		cfg.ID, cfg.Paths, cfg.Rand = id, 2, rand.Uint64
		for i := 1; i <= n; i++ {
			cfg.Nodes = append(cfg.Nodes, ring.NodeID(i))
		}
		cfg.Holder = ring.HolderFunc(func(t ring.TokenView) []ring.Carriage {
			if id == watch {
				mu.Lock()
				if *rec {
					*seen = append(*seen, slices.Clone(t.Members))
				}
				mu.Unlock()
			}
			if t.Carriages == nil {
				return []ring.Carriage{{Kind: 100, Data: []byte("carriage")}}
			}
			return t.Carriages
		})
		c, err := ring.NewNode(cfg)
		if err != nil {
			panic(err)
		}
		cores[id-1] = c
		return c
	}
}

type wireDatagram struct {
	from, to netip.AddrPort
	b        []byte
}

// TestRingRestartedNodeRefusesReplay: node 1 restarts cut off from its
// peers, and an attacker on the wire replays to it what its peers sent it
// during its earlier boot (tokens, acks, hellos: authentic datagrams of
// the peers' current boots, which the restarted node has never seen). None
// of them proves it was sent to this boot, so the new boot must commit
// nothing from them: no token of the old ring, no member but itself. Once
// the cut heals, it rejoins as after any restart.
func TestRingRestartedNodeRefusesReplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := ringnettest.New()
		var (
			mu       sync.Mutex
			rec      bool
			seen     [][]ring.NodeID
			captured []wireDatagram
			capture  = true
		)
		cores := make([]*ring.Node, 3)
		var logs lockedBuffer // node 1's log after its restart
		logNode1 := false
		uc := newCluster(t, 3, recordingCores(3, cores, 1, &mu, &rec, &seen), func(c *ringnet.Config) {
			c.Logger = quiet
			if c.Self == 1 && logNode1 {
				c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			}
		}, net.Listen)
		isNode1 := func(a netip.AddrPort) bool { return slices.Contains(uc.nodes[0], a) }
		net.SetTap(func(from, to netip.AddrPort, b []byte) {
			mu.Lock()
			defer mu.Unlock()
			if capture && isNode1(to) {
				captured = append(captured, wireDatagram{from, to, b})
			}
		})
		uc.agree(2*time.Second, 1, 2, 3)
		time.Sleep(300 * time.Millisecond) // rotations to record
		mu.Lock()
		capture = false
		// The most recent ones: the newest tokens, within the inbox.
		old := captured[max(0, len(captured)-ringnettest.Inbox/2):]
		mu.Unlock()
		oldSeq := status(uc, cores, 2).MaxSeq

		uc.crash(1)
		uc.agree(time.Second, 2, 3)
		net.SetFilter(func(from, to netip.AddrPort) bool { return !isNode1(from) && !isNode1(to) })
		mu.Lock()
		rec = true
		mu.Unlock()
		logNode1 = true
		u := uc.start(1)
		for _, d := range old {
			if !net.Inject(d.from, d.to, d.b) {
				t.Fatalf("inject to %v failed", d.to)
			}
		}
		time.Sleep(time.Second) // node 1 goes alone meanwhile
		s1 := status(uc, cores, 1)
		mu.Lock()
		views := slices.Clone(seen)
		mu.Unlock()
		st := u.d.Stats()
		t.Logf("replayed %d datagrams; node 1 accepted %d, drops %v; core %+v", len(old), st.RxDatagrams, st.Drops, s1.Counters)
		for _, m := range views {
			if !slices.Equal(m, []ring.NodeID{1}) {
				t.Errorf("restarted node 1 took the replayed ring's members %v (holder turns %v)", m, views)
				break
			}
		}
		if s1.Counters.TokensAccepted != 0 || s1.Counters.MessagesReceived != 0 {
			t.Errorf("restarted node 1 accepted %d replayed tokens, %d messages (old ring at seq %d)", s1.Counters.TokensAccepted, s1.Counters.MessagesReceived, oldSeq)
		}
		if st.RxDatagrams != 0 {
			t.Errorf("restarted node 1 stepped %d replayed datagrams, want 0", st.RxDatagrams)
		}
		if got := st.Drops[ringnet.DropNotFresh]; got == 0 {
			t.Errorf("no replayed datagram counted as %v: drops %v", ringnet.DropNotFresh, st.Drops)
		}
		// One info line for the lot (at most one per 10 s), with the reason.
		var lines []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "reason=not_fresh") {
				lines = append(lines, l)
			}
		}
		if len(lines) != 1 || !strings.Contains(lines[0], "level=INFO") {
			t.Errorf("node 1 logged %d lines about %d datagrams not fresh, want 1 at info:\n%s", len(lines), st.Drops[ringnet.DropNotFresh], strings.Join(lines, "\n"))
		}

		// A normal restart still rejoins.
		net.SetFilter(nil)
		start := time.Now()
		uc.agree(2*time.Second, 1, 2, 3)
		t.Logf("rejoined %v after the cut healed (virtual); log: %s", time.Since(start), strings.Join(lines, ""))
	})
}

// TestRingRestartRejoinTime: a crashed node that comes back is a member
// again about as fast as a fresh ring forms: the freshness handshake
// costs its first datagrams to each peer (resent by the core's reliable
// layer a few ms later), not a timeout.
func TestRingRestartRejoinTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := ringnettest.New()
		cores := make([]*ring.Node, 3)
		start := time.Now()
		uc := newCluster(t, 3, realCores(3, cores), func(c *ringnet.Config) { c.Logger = quiet }, net.Listen)
		uc.agree(2*time.Second, 1, 2, 3)
		formed := time.Since(start)
		for _, victim := range []ringnet.NodeID{1, 2, 3} {
			var survivors []ringnet.NodeID
			for id := ringnet.NodeID(1); id <= 3; id++ {
				if id != victim {
					survivors = append(survivors, id)
				}
			}
			time.Sleep(50 * time.Millisecond)
			uc.crash(victim)
			uc.agree(time.Second, survivors...)
			time.Sleep(100 * time.Millisecond)
			start = time.Now()
			uc.start(victim)
			uc.agree(2*time.Second, 1, 2, 3)
			took := time.Since(start)
			t.Logf("formed in %v; node %d rejoined in %v (virtual)", formed, victim, took)
			// A starting node waits JoinTimeout (200 ms) for a ring only
			// when it hears none; these rejoin within a few token hops.
			if took > 100*time.Millisecond {
				t.Errorf("node %d rejoined in %v, want ≤ 100 ms", victim, took)
			}
		}
	})
}

// lockedBuffer is a bytes.Buffer safe for a logger and a test to share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
