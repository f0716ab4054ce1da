// Package ring is the cluster's membership and state-sharing protocol: the
// patent's Group Membership protocol word (Figure 7), its machine operation
// (Figures 8 and 9) and Consistent State Sharing (Figure 14), as a pure state
// machine in the style of etcd-io/raft's RawNode.
//
// # Data flow
//
// A driver (ring/ringnet over UDP, ring/ringtest in memory) owns the clock
// and the sockets. It calls Tick every tick, Step for every authenticated
// datagram payload, and after each call drains Ready: it sends every Packet
// on path Packet.Path to node Packet.To and applies Ready.State (the
// committed token carriages, e.g. the VIP table) at once. Nothing here
// reads a clock, opens a socket, starts a goroutine or draws randomness
// other than Config.Rand.
//
// Inside, two layers:
//
//   - the reliable message layer (reliable.go, patent "Consistent State
//     Sharing"): a message of any size is split into packets of at most
//     MaxPacket bytes, every packet is acknowledged, the first try goes on
//     one path (hedged on the others if not acked within half an ack
//     timeout), unacknowledged packets are resent on every path with a
//     doubling timeout, and after the last
//     try the protocol layer is told the message failed. Duplicates and
//     reordering are absorbed by reassembly and a per-sender window of
//     recently completed message ids.
//   - the protocol (node.go, token.go, notify.go): the token ("locomotive")
//     with its carriages travels in node-map order among the live members.
//     Every hop is a reliable message; a failed hop drops the destination,
//     the sender's Holder applies fail-over and the token goes on to the
//     next member. A node that sees no token for the token-loss timeout
//     sends a 911 to every node of the node map; the answers decide that
//     exactly one node, the one that sent the newest token, regenerates it.
//     A 911 or start-up hello from a node outside the ring is a join
//     request; hellos between two live rings start a merge.
//
// See docs/ring.md for the protocol in full, the timers and the measurements.
package ring
