// Package forward is ringway's stateful filter: connection tracking, the
// operator's rules, anti-spoofing and the local-service policy, consulted by
// the router for every IPv4 packet it would forward or deliver to the
// node's own OS (DESIGN.md "The stateful filter"). It also routes
// symmetrically between nodes (symmetric.go, Filter.Decide): the node that
// accepted a flow's first packet handles it, registers it with the flow's
// authoritative node (directory.go: by rendezvous hashing over 2^16 rows),
// and packets of the flow that reach other nodes are redirected to it
// through the inter-node tunnel (tunnel.go: the header; seal.go:
// AES-256-GCM per sender and boot, a replay window per peer; the driver is
// forward/tunnelnet). The first packet of a new flow whose authoritative
// node is another node is held until that node acknowledges the register
// (defer.go, pfsync's defer). State replication will live here too.
// docs/forward.md describes all of it and what is not built yet.
//
// Data flow: the router hands Filter.Forward the IPv4 packet (header on),
// its input and output link, and the time. The filter parses the packet
// (parse.go) without copying, checks its source (spoof.go), finds its flow
// in the connection table (table.go) by a canonical key (key.go: both
// directions map to one entry), and either passes it by the entry,
// advancing the TCP state (tcp.go), or, for the first packet of a flow,
// asks the rules (rules.go): first match wins, then the default. An
// accepted first packet creates the entry. ICMP errors pass only when they
// quote a tracked flow (related); non-first IPv4 fragments follow their
// first fragment's verdict (frag.go). Filter.Local applies the local
// service list to traffic addressed to a VIP. Every drop has a typed
// Reason, counted in Stats.
//
// Nothing here allocates per packet once a flow exists (pinned by
// AllocsPerRun tests); every table is bounded (Config.MaxFlows,
// Config.MaxFragments): at the cap new entries are refused and counted.
// Expiry needs no scan per packet: a lookup that finds an expired entry
// treats it as absent, and Sweep, called about once a second, walks a
// bounded slice of each shard's table.
//
// The filter is safe for concurrent use: the table is split into shards,
// each behind its own mutex, by a hash of the canonical key, so the router's
// workers (one per NIC) rarely contend.
package forward
