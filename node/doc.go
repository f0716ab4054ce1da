// Package node is the composition root of one ringway process: it turns a
// config file into a running gateway node and stops it gracefully.
//
// Data flows like this:
//
//	config ──► ring core (ring.Node) ◄──► ringnet driver ◄──► UDP on every subnet
//	              │ holder: ringstate + admin queue (vipstate policies)
//	              ▼ committed state (VIP table carriage)
//	           owned VIPs ──► router.SetOwned ──► ARP answers, GARP, forwarding
//	router stats ──► per-VIP load ──► token (balancing)
//	mgmt API ──► admin queue (applied when this node next holds the token)
//
// The node holds no protocol logic of its own: it converts between the
// operator's names (node ids, durations) and the packages' numbers (node map
// positions, ticks), and it owns the lifecycle: Run starts everything, a
// cancelled context triggers a graceful leave (this node's VIPs are handed
// over through the token before the process exits), and Run returns after
// everything it started has stopped. lifecycle.go draws Run's phases
// (running, leaving, failing, draining, stopped). Run drives its parts
// through small interfaces (parts.go: Plane, Ring, Runner), so the
// lifecycle is tested without root over fakes.
package node
