package ring

// NodeID is a node's 1-based position in the node map (config "nodes:", in
// ring order). Zero means no node.
type NodeID uint16

// MaxPacket is the largest datagram payload the core hands the driver, in
// bytes, before the driver seals it. 1200 keeps a sealed datagram under
// the IPv6 minimum MTU of 1280 on any path.
const MaxPacket = 1200

// Carriage is one typed payload on the token (patent Figure 14: the data
// modules attached to the locomotive). The core does not read them; kinds
// are assigned by the Holder's package (ringstate, docs/internals.md):
// 1 VIP table, 2 per-VIP load, 3 reserved for the config epoch, 4 closed
// nodes, 5 unhealthy nodes.
type Carriage struct {
	Kind uint16
	Data []byte
}

// Packet is one datagram payload to send to node To on path Path
// (0 ≤ Path < Config.Paths). len(Data) ≤ MaxPacket. The driver owns Data
// after Ready returns.
type Packet struct {
	To   NodeID
	Path int
	Data []byte
}

// Holder is the module that reads and changes the carriages when this node
// holds the token. It must be a pure function of its argument (no clocks,
// no I/O, no randomness, no state kept between calls) so the simulator can
// replay it: everything it may read, including this node's operator
// proposals and its own measurements, arrives in the TokenView. Carriages
// in the view must not be modified in place; return new slices.
type Holder interface {
	// OnToken returns the carriages to send on. It is called when this
	// node accepts the token, when it regenerates it, when it forms a
	// ring alone, when it hands its state over in a graceful leave, and
	// when a hop it sent failed (Dropped then names the node that did not
	// answer).
	OnToken(t TokenView) Turn
}

// Turn is what the Holder returns for one TokenView.
type Turn struct {
	Carriages []Carriage
	// Urgent asks the core to pass the token on at once instead of holding
	// it: say, the Holder gave away something this node served, which
	// nobody serves until the token reaches the new owner.
	Urgent bool
	// Results answers the view's Proposals, one per proposal ID; the core
	// reports each as an EventApplied or EventRefused.
	Results []Result
}

// Result is the Holder's answer to one Proposal: Err is empty when the
// proposal was applied, else why it was refused (for the operator).
type Result struct {
	ID  uint64
	Err string
}

// Proposal is a change proposed at this node, such as an operator's VIP
// move or node close (Node.Propose). The core keeps it until this node's
// next turn with the token as a member of a ring with quorum, and hands it
// to the Holder then (TokenView.Proposals), the way raft's Propose hands
// entries to the leader. Kind and Data belong to the Holder's package
// (ringstate); the core only carries them.
type Proposal struct {
	ID   uint64 // assigned by Propose: 1, 2, ... in the order proposed
	Kind uint16
	Data []byte
}

// Local is what this node says of itself on the token (Node.SetLocal): the
// Holder writes it at each of this node's turns. The zero value is a
// healthy node that measured nothing.
type Local struct {
	// Unhealthy: a monitor of this node fails, so it should answer no VIP
	// while it stays in the ring.
	Unhealthy bool
	// Load is this node's traffic, encoded by the Holder's package
	// (ringstate.Load); opaque to the core. nil: nothing measured.
	Load []byte
}

// HolderFunc adapts a function that only changes carriages to Holder: its
// Turn is never urgent and answers no proposal.
type HolderFunc func(t TokenView) []Carriage

// OnToken returns Turn{Carriages: f(t)}.
func (f HolderFunc) OnToken(t TokenView) Turn { return Turn{Carriages: f(t)} }

// TokenView is what the Holder sees.
type TokenView struct {
	Self    NodeID   // this node
	Members []NodeID // live members in node-map order, Self included (excluded when Self is leaving)
	Dropped []NodeID // members removed since this node last saw the token (failed hop or 911)
	Joined  []NodeID // members added since this node last saw the token
	// Carriages are the token's carriages; nil when the ring starts cold
	// (the Holder then builds its initial state from its configuration).
	Carriages []Carriage
	Alone     bool     // Members == [Self]: the patent's alone mode, own every VIP
	Leaving   []NodeID // members handing their state over before they go (Self, in Leave)
	// NoQuorum is true in quorum mode Majority when Members is not a
	// majority of the node map: the Holder must release what it serves.
	NoQuorum bool
	// Proposals are this node's pending proposals, oldest first. They are
	// handed over once, at a turn where Self is a member of a ring with
	// quorum and not leaving; the Holder answers each in Turn.Results.
	Proposals []Proposal
	// Local is what this node last said of itself (SetLocal).
	Local Local
}

// State is the committed state: what this node last accepted, sent or
// regenerated. The driver applies it at once. A node answers for what the
// carriages give it only while Self is in Members: an empty Members (the
// node is between rings, see Status.Mode) means serve nothing.
type State struct {
	RingID    uint64
	Seq       uint64
	Members   []NodeID
	Holder    NodeID // the node that produced this state (this node), 0 when between rings
	Carriages []Carriage
	Alone     bool
	NoQuorum  bool // quorum mode Majority and Members is not a majority
}

// Ready is the output pending after a Step, Tick or Leave.
type Ready struct {
	Packets []Packet
	State   *State // non-nil when the committed state changed
	Events  []Event
	Left    bool // Leave finished: the state was handed over, the driver may stop
}

// Quorum says what a ring that is not a majority of the node map does.
type Quorum uint8

const (
	// Availability: every ring serves, even alone (the patent's alone mode).
	Availability Quorum = iota
	// Majority: a ring with at most half of the node map releases its state
	// (TokenView.NoQuorum) so that two sides of a partition never both serve.
	Majority
)

func (q Quorum) String() string {
	switch q {
	case Availability:
		return "availability"
	case Majority:
		return "majority"
	}
	return "quorum(?)"
}
