// Package lab builds the reference lab of DESIGN.md in network namespaces,
// through netlink only (no shelling out), and tears it down again.
//
// A lab with prefix P and N nodes is:
//
//	P-client  eth0 203.0.113.10/24, default via 203.0.113.91
//	P-server  eth0 198.51.100.10/24, default via 198.51.100.91
//	P-n<i>    ext0 203.0.113.i/24, int0 198.51.100.i/24 (i = 1..N)
//	P-sw      bridges br-ext and br-int; ports client, server, n<i>-ext, n<i>-int
//
// Every interface is one end of a veth pair whose other end is a port on a
// bridge in the switch namespace. Namespaces are named files under /run/netns,
// so `ip netns exec P-n1 ip addr` works for humans. IPv6 is disabled
// everywhere; ip_forward is 0 unless a node's NodeOptions say otherwise.
//
// Cut(i) detaches node i's two switch ports from their bridges: the node's
// NICs keep their carrier, so the node does not notice (a crash as the
// network sees it). Heal(i) reattaches them.
//
// Do runs a function on an OS thread locked into a namespace; sockets opened
// there stay in that namespace. Start forks a process from such a thread and
// logs its output under the lab's state directory (<StateDir>/<Prefix>), where
// its pid is recorded too. Close, or Cleanup(prefix) after a crashed run,
// kills every process inside the lab's namespaces and deletes them.
//
// Package lab/workload drives traffic through a lab: the 1 kHz UDP echo
// stream that measures fail-over gaps, a checked TCP transfer, and an ARP
// observer. docs/lab.md draws the topology and describes the measurements.
package lab
