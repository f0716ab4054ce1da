package router

import (
	"net/netip"
	"slices"
	"sync/atomic"
)

// counter is a single-writer counter: each goroutine owns its shard, so an
// increment is a plain load and store (no locked instruction on the hot
// path) while Stats reads it atomically from another goroutine.
type counter struct{ v atomic.Uint64 }

func (c *counter) add(n uint64) { c.v.Store(c.v.Load() + n) }
func (c *counter) load() uint64 { return c.v.Load() }

// linkCounters are one goroutine's counts for one link.
type linkCounters struct {
	rxFrames, rxBytes   counter
	rxBatches           counter // recvmmsg calls that returned frames
	arpRequests         counter // requests for owned VIPs received
	arpReplies          counter // replies for owned VIPs sent
	garps               counter // announcements sent (request + reply form = 1)
	arpResolves         counter // requests we sent to resolve next hops
	txFrames, txBytes   counter // frames sent out of this link (forwarded, replies, local output)
	forwarded, fwdBytes counter // forwarded packets received here (routed onwards)
	local, localBytes   counter // received here, delivered to the TUN device
	echoReplies         counter
	icmpErrors          counter
	fragmented          counter // packets fragmented for this (output) link's MTU
	fragments           counter // fragments they became
	drops               [numDropReasons]counter
	_                   [64]byte // keep shards on separate cache lines
}

// tunCounters count the TUN reader.
type tunCounters struct {
	read, readBytes counter
	drops           [numDropReasons]counter
}

// shard is one goroutine's counters for every link.
type shard struct {
	links  []linkCounters
	tun    tunCounters
	tunnel tunnelCounters
}

func newShard(nlinks int) *shard { return &shard{links: make([]linkCounters, nlinks)} }

// LinkStats are the counters of one capture NIC, summed over goroutines.
type LinkStats struct {
	Name           string
	MTU            int    // the NIC's MTU now (followed at run time)
	RxFrames       uint64 // frames the AF_PACKET socket delivered
	RxBytes        uint64
	RxBatches      uint64 // recvmmsg calls that returned frames (RxFrames/RxBatches = batch fill)
	SocketDrops    uint64 // frames the kernel dropped because the receive buffer was full (PACKET_STATISTICS)
	ARPRequests    uint64 // requests for owned VIPs received
	ARPReplies     uint64 // replies for owned VIPs sent
	GARPs          uint64 // gratuitous announcements sent (request and reply form count 1)
	ARPResolves    uint64 // requests sent to resolve next hops
	TxFrames       uint64 // frames sent on this NIC
	TxBytes        uint64
	Forwarded      uint64 // packets received on this NIC and routed onwards
	ForwardedBytes uint64
	Local          uint64 // packets received on this NIC for owned VIPs, given to the TUN device
	LocalBytes     uint64
	EchoReplies    uint64 // ICMP echo replies sent for owned VIPs
	ICMPErrors     uint64 // time exceeded, unreachable, fragmentation needed sent
	Fragmented     uint64 // packets without DF larger than this NIC's MTU, sent out of it as fragments (RFC 1812 5.2.6)
	Fragments      uint64 // fragments sent for them
	Drops          map[DropReason]uint64
	Neighbors      []NeighborEntry // the ARP cache
	NeighEvicted   uint64          // ARP cache entries pushed out of a full bucket by a new host
	Pending        int             // next hops awaiting an ARP reply (at most Config.NeighPending)
	Attributed     int             // sender MACs counted on a gateway VIP (at most Config.AttribMACs)
	AttribEvicted  uint64          // attributions pushed out of a full table by a new MAC
}

// VIPStats are the counters of one VIP (kept after the VIP is released).
type VIPStats struct {
	VIP         netip.Addr
	Owned       bool
	ARPRequests uint64 // requests received for it while owned
	ARPReplies  uint64
	GARPs       uint64
	Packets     uint64 // packets delivered to it, or forwarded for hosts that use it as gateway
	Bytes       uint64
	Conflicts   uint64 // ARP packets from another host claiming it while owned (each defended at most once per ARPDefendInterval)
}

// TUNStats count the local delivery device.
type TUNStats struct {
	Name      string
	Written   uint64 // packets given to the local OS
	Read      uint64 // packets the local OS sent, routed out
	ReadBytes uint64
	Drops     map[DropReason]uint64
}

// Stats is a snapshot of every counter.
type Stats struct {
	Links []LinkStats
	VIPs  []VIPStats
	TUN   TUNStats
	// Tunnel counts what went through the inter-node tunnel (zero
	// without Config.Tunnel).
	Tunnel TunnelStats
}

func sumLinks(shards []*shard, i int, ls *LinkStats) {
	for _, s := range shards {
		c := &s.links[i]
		ls.RxFrames += c.rxFrames.load()
		ls.RxBytes += c.rxBytes.load()
		ls.RxBatches += c.rxBatches.load()
		ls.ARPRequests += c.arpRequests.load()
		ls.ARPReplies += c.arpReplies.load()
		ls.GARPs += c.garps.load()
		ls.ARPResolves += c.arpResolves.load()
		ls.TxFrames += c.txFrames.load()
		ls.TxBytes += c.txBytes.load()
		ls.Forwarded += c.forwarded.load()
		ls.ForwardedBytes += c.fwdBytes.load()
		ls.Local += c.local.load()
		ls.LocalBytes += c.localBytes.load()
		ls.EchoReplies += c.echoReplies.load()
		ls.ICMPErrors += c.icmpErrors.load()
		ls.Fragmented += c.fragmented.load()
		ls.Fragments += c.fragments.load()
		for r := range c.drops {
			if v := c.drops[r].load(); v != 0 {
				if ls.Drops == nil {
					ls.Drops = map[DropReason]uint64{}
				}
				ls.Drops[DropReason(r)] += v
			}
		}
	}
}

func sortVIPStats(v []VIPStats) {
	slices.SortFunc(v, func(a, b VIPStats) int { return a.VIP.Compare(b.VIP) })
}
