package ringnet

import "github.com/ringway/ringway/ring"

// The core's types, under short names for this package's API.
type (
	// NodeID is a node's 1-based position in the node map; 0 means none.
	NodeID = ring.NodeID
	// Packet is one datagram payload the core wants sent.
	Packet = ring.Packet
	// Ready is the core's pending output.
	Ready = ring.Ready
	// State is a committed ring state.
	State = ring.State
	// Event is something the core reports.
	Event = ring.Event
)

// MaxPacket is the largest payload the core hands the driver.
const MaxPacket = ring.MaxPacket
