// Package ringstate is the production ring.Holder: what a node does with
// the token's carriages while it holds the token. It decodes the VIP table
// (carriage kind 1, vipstate.Table) and the per-VIP load (carriage kind 2),
// records this node's own load measurements, calls vipstate's Step with the
// ring's live members (fail-over, preference return, balancing), and
// re-encodes both. Other carriages ride along untouched, in order.
//
// It is pure, as ring.Holder requires: everything it reads comes from the
// TokenView and from Config. The operator's operations arrive as the
// view's Proposals (VIPOp, NodeOp, proposed with ring.Node.Propose), this
// node's health and load as its Local (ring.Node.SetLocal). Both the node
// package and the ring simulator use it, through the same inputs, so the
// simulator checks the VIP invariants on the real policy code, operator
// operations and monitor failures included.
//
// Carriage kind 2 carries the load per VIP (bytes/s, measured by the VIP's
// owner); a node's load is the sum over the VIPs it owns, which is what
// vipstate's balancing reads.
//
// Owned applies the serving rule every node follows on each committed
// state: answer the VIPs the table gives you, but only while you are a
// member of the state's ring and the ring has quorum.
package ringstate
