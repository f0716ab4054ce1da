package main

import (
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ring/ringnet"
)

// spec is what every node of one cluster shares.
type spec struct {
	n        int
	addrs    [][]netip.AddrPort
	key      []byte
	carriage int // bytes of synthetic carriage (0: none)
	hop      int // HopInterval override, -1: default
	minRot   int // MinRotation override, -1: default
}

func (s spec) nodeIDs() []ring.NodeID {
	ids := make([]ring.NodeID, s.n)
	for i := range ids {
		ids[i] = ring.NodeID(i + 1)
	}
	return ids
}

func loopbackAddrs(n int, port uint16) [][]netip.AddrPort {
	var a [][]netip.AddrPort
	for i := 1; i <= n; i++ {
		a = append(a, []netip.AddrPort{
			netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 77, 1, byte(i)}), port),
			netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 77, 2, byte(i)}), port),
		})
	}
	return a
}

// ringConfig returns the core config of node id: default timers, two paths.
func (s spec) ringConfig(id ring.NodeID) ring.Config {
	rc := ring.DefaultConfig()
	rc.ID, rc.Nodes, rc.Paths = id, s.nodeIDs(), 2
	if s.hop >= 0 {
		rc.HopInterval = s.hop
	}
	if s.minRot >= 0 {
		rc.MinRotation = s.minRot
	}
	rc.Rand = rand.Uint64
	size := s.carriage
	rc.Holder = ring.HolderFunc(func(t ring.TokenView) []ring.Carriage {
		if t.Carriages == nil && size > 0 {
			return []ring.Carriage{{Kind: 100, Data: make([]byte, size)}}
		}
		return t.Carriages
	})
	return rc
}

// newNode builds node id's core and driver (nothing runs yet).
func (s spec) newNode(id ring.NodeID) (*ring.Node, *ringnet.Driver, error) {
	core, err := ring.NewNode(s.ringConfig(id))
	if err != nil {
		return nil, nil, err
	}
	dc := ringnet.DefaultConfig()
	dc.Self, dc.Nodes, dc.Key = id, s.addrs, s.key
	dc.Logger = slog.New(slog.DiscardHandler)
	d, err := ringnet.New(dc, core)
	if err != nil {
		return nil, nil, err
	}
	return core, d, nil
}

// view is what the harness knows of one node's committed membership.
type view struct {
	mu      sync.Mutex
	members []ring.NodeID
	goal    []ring.NodeID // nil: not watched
	goalAt  time.Time     // when members first equalled goal
}

func (v *view) observe(members []ring.NodeID, at time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.members = members
	if v.goalAt.IsZero() && v.goal != nil && slices.Equal(members, v.goal) {
		v.goalAt = at
	}
}

func (v *view) setGoal(goal []ring.NodeID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.goal, v.goalAt = goal, time.Time{}
	if goal != nil && slices.Equal(v.members, goal) {
		v.goalAt = time.Now()
	}
}

func (v *view) reached() (time.Time, []ring.NodeID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.goalAt, v.members
}

// waitViews waits until every view has reached its goal and returns the
// latest instant one did.
func waitViews(views []*view, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var last time.Time
		all := true
		for _, v := range views {
			at, _ := v.reached()
			if at.IsZero() {
				all = false
				break
			}
			if at.After(last) {
				last = at
			}
		}
		if all {
			return last, true
		}
		time.Sleep(time.Millisecond) // polling; the instant itself is recorded by the watchers
	}
	return time.Time{}, false
}
