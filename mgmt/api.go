package mgmt

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Status is what GET /api/v1/status returns: this node's view of the cluster.
// Every member carries the same VIP table (it rides on the token), so any node
// can answer for the whole cluster.
type Status struct {
	Cluster string `json:"cluster"`
	Node    string `json:"node"`    // the node answering
	Version string `json:"version"` // its ringway version
	// Mode is the node's ring mode: starting, member, limbo (between rings,
	// serving nothing), left, or stopped (the ring driver has stopped). A
	// lone member is "member" with Alone set.
	Mode    string   `json:"mode"`
	RingID  uint64   `json:"ring_id"`
	Seq     uint64   `json:"seq"`
	Members []string `json:"members"` // live members in ring order
	Nodes   []string `json:"nodes"`   // the whole node map in ring order
	Closed  []string `json:"closed"`  // nodes an operator closed (they answer no VIP)
	// Unhealthy lists nodes whose monitors fail (they answer no VIP).
	Unhealthy []string `json:"unhealthy"`
	// LinksDown lists this node's subnet interfaces that are down (NIC
	// monitor), when it runs.
	LinksDown []string `json:"links_down,omitempty"`
	// PingFailing lists the ping monitor's targets that do not answer
	// this node, when it runs.
	PingFailing []netip.Addr `json:"ping_failing,omitempty"`
	// AppFailure says why this node's application check last failed.
	AppFailure string `json:"app_failure,omitempty"`
	// Holder is the token's holder as far as this node knows: itself while
	// it holds it, else the member it last passed it to ("" between rings).
	Holder   string  `json:"holder"`
	Holding  bool    `json:"holding"`     // this node holds the token right now
	Rotation float64 `json:"rotation_ms"` // last measured token rotation time
	Alone    bool    `json:"alone"`       // the patent's alone mode: the only member
	NoQuorum bool    `json:"no_quorum"`   // quorum majority and below it: serving nothing
	UptimeS  float64 `json:"uptime_s"`
	VIPs     []VIP   `json:"vips"`
	// Counters are cumulative counts for operators (ring, router).
	Counters map[string]uint64 `json:"counters,omitempty"`
	// Filter is this node's stateful filter; nil when the node does not
	// report one.
	Filter *FilterStatus `json:"filter,omitempty"`
	// Events are the last membership changes this node saw, oldest first,
	// each with its cause (at most 32).
	Events []MembershipEvent `json:"events,omitempty"`
	// NodeStates is every node of the node map with its state and load, in
	// ring order.
	NodeStates []NodeState `json:"node_states,omitempty"`
	// Links is the traffic of this node's subnet NICs, bytes/s averaged
	// over the last second.
	Links []LinkLoad `json:"links,omitempty"`
	// Moves are the last VIP moves this node saw, oldest first, each with
	// its reason (at most 32).
	Moves []VIPMove `json:"moves,omitempty"`
	// Ops are the last operator operations queued at this node, oldest
	// first, with their outcome once the ring applied or refused them.
	Ops []OpStatus `json:"ops,omitempty"`
	// Balancing (L.BAL) says load balancing may move VIPs; Auto says a
	// node that comes back takes VIPs by itself (Switches, set with
	// `ringway cluster balance|auto on|off`).
	Balancing bool          `json:"balancing"`
	Auto      bool          `json:"auto"`
	Config    *ConfigStatus `json:"config,omitempty"` // the config epoch and file hashes (reload.go)
}

// NodeState is one node of the node map as the console shows it.
type NodeState struct {
	ID string `json:"id"`
	// State is member, alone (the only member), closed (by an operator),
	// unhealthy (its monitors fail) or down (not in the ring).
	State string `json:"state"`
	// Load is the sum of the rates of the VIPs it owns, bytes/s, as
	// carried on the token.
	Load uint64 `json:"load_bps"`
	VIPs int    `json:"vips"` // VIPs it answers
}

// LinkLoad is one NIC's traffic in bytes/s.
type LinkLoad struct {
	Name string `json:"name"`
	Rx   uint64 `json:"rx_bps"`
	Tx   uint64 `json:"tx_bps"`
}

// VIPMove is a VIP changing owner, as one node saw the table change.
type VIPMove struct {
	Time time.Time  `json:"time"`
	VIP  netip.Addr `json:"vip"`
	From string     `json:"from"` // "" when it had no owner
	To   string     `json:"to"`   // "" when nobody answers it now
	// Reason is failover (its owner left the ring), operator (a move,
	// preference or close by an operator), handover (its owner was closed
	// or became unhealthy), preference (back to its preferred node),
	// assign (it had no owner) or balancing.
	Reason string `json:"reason"`
}

// OpStatus is an operator operation queued at the node answering.
type OpStatus struct {
	ID    uint64    `json:"id"`
	Desc  string    `json:"desc"`  // "vip move 203.0.113.91 n2"
	State string    `json:"state"` // queued, applied (on the token), refused
	Error string    `json:"error,omitempty"`
	Time  time.Time `json:"time"` // when it was queued
}

// MembershipEvent is one change of the membership as one node saw it.
type MembershipEvent struct {
	Time time.Time `json:"time"`
	// Kind is what changed: formed, dropped, joined, merged, regenerated,
	// left, stale (this node is in no ring: its line moved on without it)
	// or changed (a peer gave no cause).
	Kind string `json:"kind"`
	Node string `json:"node,omitempty"` // the node dropped, joined or left; merged: the one heard; regenerated: who sent the first 911
	By   string `json:"by,omitempty"`   // the node that made the change ("" when unknown)
	// Learnt is true when another node made the change and this one
	// learnt it from the token.
	Learnt bool `json:"learnt,omitempty"`
	// Cause says why, as the log line does: "n1 dropped n3: hop
	// unacknowledged after 3 tries on paths 0,1, last RTT 0.4 ms".
	Cause   string   `json:"cause"`
	RingID  uint64   `json:"ring_id"`
	Members []string `json:"members"` // the members after the change
}

// FilterStatus is the stateful filter of the node answering.
type FilterStatus struct {
	Enabled  bool   `json:"enabled"`   // filter.enabled; off means stateless forwarding
	Flows    int64  `json:"flows"`     // flows in the table now
	MaxFlows int64  `json:"max_flows"` // the table's cap
	NewFlows uint64 `json:"new_flows"` // flows accepted since start
	// Drops counts packets dropped since start by forward.Reason name
	// (rule, no_state, table_full, spoofed_subnet, local_not_allowed, ...).
	Drops map[string]uint64 `json:"drops,omitempty"`
	// Tunnel is symmetric routing's use of the inter-node tunnel; nil on a
	// single node.
	Tunnel *TunnelStatus `json:"tunnel,omitempty"`
}

// TunnelStatus counts the inter-node tunnel of one node since start.
type TunnelStatus struct {
	Redirects     uint64    `json:"redirects"`      // packets this node's filter sent to another node
	Sent          uint64    `json:"sent"`           // data packets sent (redirects, and packets sent on to their handler)
	SentBytes     uint64    `json:"sent_bytes"`     //
	Received      uint64    `json:"received"`       // data packets received
	ReceivedBytes uint64    `json:"received_bytes"` //
	Forwarded     uint64    `json:"forwarded"`      // received packets this node forwarded as their flow's handler
	SentOn        uint64    `json:"sent_on"`        // received packets sent on to their handler (as authoritative node)
	Registers     [2]uint64 `json:"registers"`      // [sent, received]
	Hints         [2]uint64 `json:"hints"`          // [sent, received]
	Registry      int       `json:"registry"`       // flows whose handler this node knows as their authoritative node
	HintsHeld     int       `json:"hints_held"`     // hints held now
	Acks          [2]uint64 `json:"acks"`           // register acknowledgements [sent, received]
	// Defer is the holding of new flows' first packets until their
	// register is acknowledged (filter.defer).
	Defer DeferStatus `json:"defer"`
	// Drops counts refused datagrams by reason (forged, replayed, ...)
	// and packets the tunnel could not carry (send_error, queue_full).
	Drops map[string]uint64 `json:"drops,omitempty"`
	// Peers counts data packets by peer node id: [sent, received].
	Peers map[string][2]uint64 `json:"peers,omitempty"`
	// Epoch is this node's membership epoch (docs/forward.md "Membership
	// epochs"); EpochStale and EpochFuture count datagrams from senders
	// on an older or a newer membership; HintsStale the hints refused
	// for an older epoch or a handler that is not a member.
	Epoch       uint64 `json:"epoch"`
	EpochStale  uint64 `json:"epoch_stale"`
	EpochFuture uint64 `json:"epoch_future"`
	HintsStale  uint64 `json:"hints_stale"`
	// PeerBytes counts the bytes of the data packets by peer node id:
	// [sent, received].
	PeerBytes map[string][2]uint64 `json:"peer_bytes,omitempty"`
	// MSSClamped counts TCP SYNs whose MSS was lowered to fit the tunnel;
	// FragNeeded the DF packets too large for it, answered with ICMP
	// fragmentation needed.
	MSSClamped uint64 `json:"mss_clamped"`
	FragNeeded uint64 `json:"frag_needed"`
	// Coalesced counts the TCP segments from the tunnel that left this
	// node in one of SuperFrames (GSO frames built at the handler).
	Coalesced   uint64 `json:"coalesced"`
	SuperFrames uint64 `json:"super_frames"`
	// Replication is state replication and fail-over (replication.go).
	Replication *ReplicationStatus `json:"replication,omitempty"`
}

// DeferStatus counts the first packets held until the flow's
// authoritative node acknowledged its register (filter.defer).
type DeferStatus struct {
	Deferred        uint64 `json:"deferred"`         // first packets held
	ReleasedAck     uint64 `json:"released_ack"`     // of those, forwarded when the ack came
	ReleasedTimeout uint64 `json:"released_timeout"` // of those, forwarded when filter.defer ran out
	Overflow        uint64 `json:"defer_overflow"`   // first packets forwarded at once: too many held
	Held            int    `json:"held"`             // held now
	// AckLatencyUs counts acks by how long their packet waited: entry 0
	// under 1 µs, entry i from 2^(i-1) to 2^i µs; the last also counts
	// everything longer.
	AckLatencyUs []uint64 `json:"ack_latency_us,omitempty"`
}

// VIP is one row of the VIP table as operators see it.
type VIP struct {
	VIP         netip.Addr `json:"vip"`
	Subnet      string     `json:"subnet"`
	Owner       string     `json:"owner"`     // "" when closed or unowned
	Preferred   string     `json:"preferred"` // "" when none
	Persistence string     `json:"persistence"`
	Group       string     `json:"group,omitempty"`
	Closed      bool       `json:"closed,omitempty"`
	// Rate is its traffic in bytes/s as its owner measured it (carried on
	// the token; see docs/console.md for what is counted).
	Rate uint64 `json:"rate_bps"`
}

// Lookup returns the row of vip in the status's VIP table.
func (s Status) Lookup(vip netip.Addr) (VIP, bool) {
	for _, v := range s.VIPs {
		if v.VIP == vip {
			return v, true
		}
	}
	return VIP{}, false
}

// Owner is the node answering for vip, "" when nobody does or it is unknown.
func (s Status) Owner(vip netip.Addr) string {
	v, _ := s.Lookup(vip)
	return v.Owner
}

// VIPOps are the operations POST /api/v1/vips/{vip}/{op} accepts.
var VIPOps = []string{"move", "prefer", "unprefer", "stick", "unstick", "close", "open"}

// VIPOp is an operator's request to change one VIP.
type VIPOp struct {
	Op   string     // one of VIPOps
	VIP  netip.Addr // the VIP
	Node string     // target node id, for move only
}

// Validate says what is wrong with op, if anything.
func (op VIPOp) Validate() error {
	known := false
	for _, o := range VIPOps {
		known = known || o == op.Op
	}
	switch {
	case !known:
		return fmt.Errorf("unknown VIP operation %q: want one of %v", op.Op, VIPOps)
	case !op.VIP.Is4():
		return fmt.Errorf("%q is not an IPv4 VIP address", op.VIP)
	case op.Op == "move" && op.Node == "":
		return errors.New("move needs a target node")
	case op.Op != "move" && op.Node != "":
		return fmt.Errorf("%s takes no node", op.Op)
	}
	return nil
}

// NodeOps are the operations POST /api/v1/nodes/{node}/{op} accepts.
var NodeOps = []string{"close", "open"}

// NodeOp is an operator's request to close a node (it hands its VIPs over
// and receives none, but stays in the ring) or open it again.
type NodeOp struct {
	Op   string // one of NodeOps
	Node string // node id
}

// Validate says what is wrong with op, if anything.
func (op NodeOp) Validate() error {
	switch {
	case !slices.Contains(NodeOps, op.Op):
		return fmt.Errorf("unknown node operation %q: want one of %v", op.Op, NodeOps)
	case op.Node == "":
		return errors.New("no node given")
	}
	return nil
}

// OpQueuer is a Backend that names each queued operation; the API then
// answers its id, which Status.Ops follows to applied or refused.
type OpQueuer interface {
	QueueVIP(op VIPOp) (uint64, error)
	QueueNode(op NodeOp) (uint64, error)
}

// ErrNotFound is what a Backend returns (wrapped) for an unknown VIP or node;
// the API answers 404.
var ErrNotFound = errors.New("not found")

// Backend is the node as the API sees it.
type Backend interface {
	// Status returns a snapshot; it must be cheap and safe to call from any
	// goroutine.
	Status() Status
	// VIP queues op for the next time this node holds the token. It returns
	// an error wrapping ErrNotFound for an unknown VIP or node, another error
	// for a request that can never succeed, nil once queued.
	VIP(op VIPOp) error
	// Node queues op like VIP; an unknown node wraps ErrNotFound.
	Node(op NodeOp) error
}

type apiError struct {
	Error string `json:"error"`
}

// BucketQuantile returns the upper bound, µs, of the bucket that holds the
// q-quantile of a power-of-two histogram as the status carries them
// (DeferStatus.AckLatencyUs: entry i counts up to 2^i µs); 0 when it is
// empty. BoundedQuantile is for histograms with bounds of their own.
func BucketQuantile(h []uint64, q float64) int {
	if i := bucketOf(h, q); i >= 0 {
		return 1 << i
	}
	return 0
}

// BoundedQuantile returns the upper bound, µs, of the bucket that holds
// the q-quantile of h, whose entry i counts up to bounds[i] and whose last
// entry, past the bounds, counts the rest: then over, with the last bound.
// 0 when h is empty. Without bounds (a status from a node older than
// them) h is a power-of-two histogram, as BucketQuantile reads it.
func BoundedQuantile(h []uint64, bounds []uint32, q float64) (us int, over bool) {
	i := bucketOf(h, q)
	switch {
	case i < 0:
		return 0, false
	case len(bounds) == 0:
		return 1 << i, false
	case i < len(bounds):
		return int(bounds[i]), false
	}
	return int(bounds[len(bounds)-1]), true
}

// bucketOf returns the index of the bucket of h that holds its
// q-quantile; -1 when h is empty.
func bucketOf(h []uint64, q float64) int {
	var n, sum uint64
	for _, v := range h {
		n += v
	}
	for i, v := range h {
		if sum += v; n > 0 && float64(sum) >= q*float64(n) {
			return i
		}
	}
	return -1
}
