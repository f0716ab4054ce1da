package node

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/ringway/ringway/mgmt"
	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ringstate"
	"github.com/ringway/ringway/vipstate"
)

// What the console shows beyond the ring's own status: the outcome of
// operator operations, VIP moves with their reasons, and load.

// maxRecent bounds the operations and moves remembered for the status.
const maxRecent = 32

// opLog remembers the last operator operations queued at this node and
// their outcome (ring.EventApplied, ring.EventRefused).
type opLog struct {
	mu     sync.Mutex
	recent []mgmt.OpStatus // oldest first, at most maxRecent
}

func (l *opLog) add(id uint64, desc string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.recent) == maxRecent {
		l.recent = slices.Delete(l.recent, 0, 1)
	}
	l.recent = append(l.recent, mgmt.OpStatus{ID: id, Desc: desc, State: "queued", Time: now})
}

// done records the outcome of proposal id (refused when why is not "")
// and returns its description.
func (l *opLog) done(id uint64, why string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.recent {
		if o := &l.recent[i]; o.ID == id {
			o.State, o.Error = "applied", why
			if why != "" {
				o.State = "refused"
			}
			return o.Desc
		}
	}
	return "?"
}

func (l *opLog) list() []mgmt.OpStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recent)
}

// moveLog remembers the last VIP moves and counts them by reason.
type moveLog struct {
	mu       sync.Mutex
	recent   []mgmt.VIPMove
	byReason map[string]uint64
	byCause  map[string]uint64 // membership changes by kind (events.go)
}

func (l *moveLog) add(ms []mgmt.VIPMove) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byReason == nil {
		l.byReason = map[string]uint64{}
	}
	for _, m := range ms {
		l.byReason[m.Reason]++
	}
	l.recent = append(l.recent, ms...)
	if over := len(l.recent) - maxRecent; over > 0 {
		l.recent = slices.Delete(l.recent, 0, over)
	}
}

func (l *moveLog) membership(kind string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byCause == nil {
		l.byCause = map[string]uint64{}
	}
	l.byCause[kind]++
}

func (l *moveLog) list() []mgmt.VIPMove {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recent)
}

// counts returns copies of the moves by reason and membership changes by
// cause.
func (l *moveLog) counts() (moves, changes map[string]uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.byReason), maps.Clone(l.byCause)
}

// moves compares two committed tables and says why each VIP changed
// owner. Only the holder that moved a VIP knows the reason for sure (the
// reason is not on the token); every node infers it from what it sees in
// the same state, in this order: it had no owner (assign); its owner is
// no longer a member (failover); its preference or closed flag changed in
// the same state (operator); its owner is closed or unhealthy (handover);
// it went to its preferred node (preference); otherwise balancing.
func (n *Node) moves(prev, st *ring.State, now time.Time) []mgmt.VIPMove {
	old, ok1, _ := ringstateTable(prev)
	cur, ok2, _ := ringstateTable(st)
	if !ok1 || !ok2 {
		return nil
	}
	closed := append(ringstate.Closed(st.Carriages), ringstate.Unhealthy(st.Carriages)...)
	var out []mgmt.VIPMove
	for i := range cur.Len() {
		r := cur.Row(i)
		o, found := old.Lookup(r.VIP)
		if !found {
			continue
		}
		if o.Current == r.Current {
			continue
		}
		why := "balancing"
		switch {
		case o.Current == vipstate.None:
			why = "assign"
		case !slices.Contains(st.Members, ring.NodeID(o.Current)):
			why = "failover"
		case o.Preferred != r.Preferred || o.Closed != r.Closed || o.Persistence != r.Persistence:
			why = "operator"
		case slices.Contains(closed, o.Current):
			why = "handover"
		case r.Persistence == vipstate.PersistPreferred && r.Current == r.Preferred:
			why = "preference"
		}
		out = append(out, mgmt.VIPMove{Time: now, VIP: r.VIP, From: n.name(ring.NodeID(o.Current)), To: n.name(ring.NodeID(r.Current)), Reason: why})
	}
	return out
}

// nodeStates is every node of the node map with its state, VIPs and load.
func (n *Node) nodeStates(st *ring.State, vips []mgmt.VIP) []mgmt.NodeState {
	names := *n.names.Load()
	out := make([]mgmt.NodeState, 0, len(names))
	var closed, unhealthy ringstate.NodeSet
	if st != nil {
		closed, unhealthy = ringstate.Closed(st.Carriages), ringstate.Unhealthy(st.Carriages)
	}
	for i, name := range names {
		id := ring.NodeID(i + 1)
		ns := mgmt.NodeState{ID: name, State: "down"}
		if st != nil && slices.Contains(st.Members, id) {
			switch {
			case slices.Contains(closed, vipstate.Node(id)):
				ns.State = "closed"
			case slices.Contains(unhealthy, vipstate.Node(id)):
				ns.State = "unhealthy"
			case st.Alone:
				ns.State = "alone"
			default:
				ns.State = "member"
			}
		}
		for _, v := range vips {
			if v.Owner == name {
				ns.VIPs++
				ns.Load += v.Rate
			}
		}
		out = append(out, ns)
	}
	return out
}

// linkRates turns two samples of the router's per-link byte counters
// dt apart into rates.
func linkRates(prev map[string][2]uint64, now map[string][2]uint64, order []string, dt time.Duration) []mgmt.LinkLoad {
	out := make([]mgmt.LinkLoad, 0, len(order))
	for _, name := range order {
		c, p := now[name], prev[name]
		l := mgmt.LinkLoad{Name: name}
		if dt > 0 && c[0] >= p[0] && c[1] >= p[1] && prev != nil {
			l.Rx = uint64(float64(c[0]-p[0]) / dt.Seconds())
			l.Tx = uint64(float64(c[1]-p[1]) / dt.Seconds())
		}
		out = append(out, l)
	}
	return out
}
