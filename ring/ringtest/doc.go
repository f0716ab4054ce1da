// Package ringtest is a deterministic simulator for the ring protocol: N
// ring.Nodes with the production Holder (ringstate over vipstate) on an
// in-memory network with per-link loss, delay, jitter, duplication,
// reordering, one-way cuts and partitions, plus node pauses, crashes,
// restarts and graceful leaves.
//
// Everything is driven from one seeded random source and one event queue
// ordered by (time, insertion order), so a seed replays exactly. Time is in
// microseconds; every node ticks every 2 ms (ring.TickMillis) at its own
// phase. After every event the simulator checks the invariants (invariants.go)
// and remembers the first violation, which Sim.Err reports together with the
// command that replays it.
package ringtest
