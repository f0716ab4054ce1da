// Package vipstate is the cluster's VIP table and every policy that changes
// it: fail-over, preference return, dynamic load balancing with hysteresis,
// and the operator's moves. It is pure: no I/O, no clocks, no goroutines, no
// randomness, so the ring simulator can replay it.
//
// # The table
//
// The table is the patent's Group Composition field (Table 1): one Row per
// VIP with its current host, preferred host and Persistence Flag (0 none,
// 1 current, 3 preferred), plus the VIP's subnet, its group (VIPs that move
// as one, such as the external and internal address of one gateway pair) and
// whether it is closed. Rows are sorted by VIP. A node is its 1-based
// position in the config's node map (Node); None (0) means nobody.
//
// The table rides on the token as carriage kind 1 (docs/internals.md):
// MarshalBinary/UnmarshalBinary, about 7 bytes per VIP (4096 VIPs: 28 KB).
//
// # How the token holder uses it
//
// Only the token holder changes the table, so changes never conflict. Each
// time a node holds the token it:
//
//  1. decodes the table from the token;
//  2. applies any queued operator actions (Move, Prefer, Unprefer, Stick,
//     Unstick, Close, Open), which only record intent;
//  3. calls Step with itself, the live members in ring order, the per-VIP
//     loads from the token and the balancing config (patent Figure 9, box
//     910 "change in VIP assignment needed?");
//  4. stops answering the VIPs it gave away (the Moves with From = itself)
//     before it passes the token on, encodes the new table and sends it.
//
// Every node, on receiving a table, answers exactly the VIPs whose Current is
// itself (OwnedBy) and sends gratuitous ARP for the ones it gained (box 912).
//
// # Why no VIP is ever answered by two nodes
//
// A VIP moves between two live nodes (preference return, balancing) only in
// the Step of its current owner, which stops answering before the token
// leaves; the new owner starts when the token reaches it. A VIP whose owner
// is not live (fail-over) may be moved by any holder, because nobody is
// answering it. So there is a gap of at most one hop and never an overlap.
//
// # Policies
//
// See Step for the order; failover.go, balance.go and admin.go for each
// policy and why it is shaped so. Persistence in short:
//
//   - none: balancing may move it; a recorded preferred host is only a hint
//     used when the VIP must be placed anyway;
//   - current: stays on its host until that host dies, then sticks to the
//     new one (Preferred follows Current) and stays when the old recovers;
//   - preferred: on its preferred host whenever that host is live.
//
// Whatever the flag, a VIP whose host is not live moves to a live node at
// once. A joining node receives VIPs only through preference or balancing.
package vipstate
