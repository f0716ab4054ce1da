package ring

// NodeID is a node's 1-based position in the node map (config "nodes:", in
// ring order). Zero means no node.
type NodeID uint16

// MaxPacket is the largest datagram payload the core hands the driver, in
// bytes, before the driver seals it. 1200 keeps a sealed datagram under
// the IPv6 minimum MTU of 1280 on any path.
const MaxPacket = 1200

// Carriage is one typed payload on the token (patent Figure 14: the data
// modules attached to the locomotive). Kinds are assigned by the node
// package (docs/internals.md): 1 VIP table, 2 per-node load and health,
// 3 config epoch.
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
// holds the token. It must be a pure function of its arguments (no clocks,
// no I/O, no randomness) so the simulator can replay it. Carriages in the
// view must not be modified in place; return new slices.
type Holder interface {
	// OnToken returns the carriages to send on. It is called when this
	// node accepts the token, when it regenerates it, when it forms a
	// ring alone, and when a hop it sent failed (Dropped then names the
	// node that did not answer).
	OnToken(t TokenView) []Carriage
}

// Urgent may be implemented by a Holder. Right after OnToken the core asks
// whether the carriages just returned must not wait for the hold: say, the
// Holder gave away something this node served, which nobody serves until
// the token reaches the new owner. The token then goes on at once.
type Urgent interface {
	Urgent() bool
}

// HolderFunc adapts a function to Holder.
type HolderFunc func(t TokenView) []Carriage

// OnToken calls f(t).
func (f HolderFunc) OnToken(t TokenView) []Carriage { return f(t) }

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
