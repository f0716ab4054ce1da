// Package router is ringway's data plane: it answers ARP for the VIPs this
// node owns, announces them with gratuitous ARP, routes IPv4 between the
// node's subnets in user space, answers ICMP echo for owned VIPs and hands
// every other packet addressed to an owned VIP to the local OS through a TUN
// device (the patent's Figure 15: every VIP is configured on every node, only
// the owner answers ARP).
//
// # Data flow
//
//	NIC ext0 ──AF_PACKET (ETH_P_ALL, BPF: ARP + IPv4 to our MAC, vnet header)──┐
//	                                                                            │ one receive goroutine per NIC queue:
//	                                                                            │ FrameReader.Read batch → decide → act
//	   ARP request for owned VIP ── decideARP ── reply in place, same NIC       │
//	   ARP claiming an owned VIP ── defending GARP + warning (rate-limited)      │
//	   IPv4 ── decideIPv4 ── forward: lookup route, resolve next hop in the     │
//	                          userspace ARP cache (neigh), rewrite MACs, TTL−1, │
//	                          RFC 1624 checksum, queue for the out NIC          │
//	                      └─ echo to owned VIP: reply in place                  │
//	                      └─ other traffic to owned VIP: queue for TUN          │
//	                      └─ TTL expiry / no route: ICMP error to the sender    │
//	                      └─ too big: fragment (no DF, not GSO) or ICMP (DF)    │
//	   end of batch: one LinkDevice.Write per out NIC, one TUNDevice.Write      │
//	TUN (all VIPs) ── one goroutine reads batches of replies of local services and routes them as above
//	timer ── GARP schedule (garp.go), ARP cache retries and expiry (neigh.go);
//	         sleeps until the earliest deadline (nextAt) or a kick from SetOwned,
//	         Announce or the ARP cache (new pending host or entry)
//	MTU watcher ── netlink link updates (mtu_linux.go) → one atomic per link
//
// # Bounded tables
//
// Every table a host on a subnet can grow is bounded with O(1) work per new
// key: load attribution and the ARP cache are fixed-size set-associative
// tables that evict the least recently used entry of a full bucket
// (bounded.go); pending ARP resolutions are capped in number and bytes and
// refuse more (neigh.go, neigh_pending_full). docs/router.md says why each
// policy.
//
// # Cores and drivers
//
// The decisions are pure functions over byte slices and immutable tables
// (frame.go, checksum.go, arp.go, route.go, decide.go with the ICMP echo and
// error encoders, frag.go, bounded.go, garp.go, neigh.go take time as an
// argument). The Linux
// driver (router_linux.go, worker_linux.go, kernel_linux.go) owns the
// goroutines and stays thin.
//
// # Devices
//
// Frames enter and leave only through the batch-shaped interfaces of
// device.go, modelled on wireguard-go's conn.Bind and tun.Device:
// FrameReader and LinkDevice for a capture NIC, TUNDevice for local
// delivery. The virtio-net header travels inside each buffer. The real ones
// are AF_PACKET sockets (link_linux.go: a TPACKET_V2 ring per receive queue,
// rxring_linux.go, or recvmmsg; sendmmsg on a transmit socket) and the TUN device file (tun_linux.go); Config.Devices
// substitutes others, such as routertest's channel-backed FakeLink and
// FakeTUN, so the whole per-packet path runs in tests without privileges.
//
// # Offloads
//
// veth and virtio NICs hand AF_PACKET frames with partial checksums and GSO
// super-frames. The sockets are opened with PACKET_VNET_HDR, so every frame
// carries its virtio-net header; the router passes the header through on
// forwarding (the output NIC or the kernel finishes the checksum and
// segments), and through to the TUN device (opened with IFF_VNET_HDR by
// wireguard's tun package) on local delivery. No NIC setting is changed.
//
// # Kernel
//
// SetupKernel (kernel_linux.go) keeps the node's kernel out of the way:
// ip_forward=0, arp_ignore=1/arp_announce=2 and IPv6 off on capture NICs, and
// an nftables netdev ingress rule dropping IPv4 not addressed to a primary
// address, so the kernel never answers or duplicates VIP traffic. It records
// every value it changes and Restore puts them back.
package router
