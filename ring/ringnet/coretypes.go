package ringnet

// Placeholder mirrors of the ring core's types, used until package ring lands;
// they are replaced by aliases of ring's types then.

// NodeID is a node's 1-based position in the node map; 0 means none.
type NodeID = uint16

// MaxPacket is the largest plaintext payload the core hands the driver.
const MaxPacket = 1200

// Packet is one datagram payload the core wants sent.
type Packet struct {
	To   NodeID
	Path int
	Data []byte
}

// State is a committed ring state.
type State struct {
	RingID    uint64
	Seq       uint64
	Members   []NodeID
	Holder    NodeID
	Carriages []Carriage
	Alone     bool
}

// Carriage is a typed payload on the token.
type Carriage struct {
	Kind uint16
	Data []byte
}

// Event is something the core reports.
type Event struct{}

// Status is the core's status.
type Status struct{}

// Ready is the core's pending output.
type Ready struct {
	Packets []Packet
	State   *State
	Events  []Event
	Left    bool
}
