package config

import (
	"fmt"
	"math"
	"time"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/vipstate"
)

// Ring timer defaults: THE one place they are set. With them a crash is
// repaired in about 60 ms at 3 nodes on a LAN (p99, real UDP) and a node
// spends under 1 % of a core on the ring; docs/ring.md ("Timers") derives
// each from the measurements of `make bench-ring`, and docs/config.md
// quotes them.
const (
	DefaultTick        = 2 * time.Millisecond   // ring clock
	DefaultHopInterval = 4 * time.Millisecond   // token held at least this long per hop
	DefaultMinRotation = 40 * time.Millisecond  // small rings hold longer: a rotation takes at least this
	DefaultAckTimeout  = 4 * time.Millisecond   // first resend; resends double
	DefaultAckRetries  = 2                      // resends before a hop fails
	DefaultTokenLoss   = 0                      // 0 = automatic (Ring.TokenLossFor)
	DefaultJoinTimeout = 200 * time.Millisecond // start-up wait before going alone

	// DefaultRealtimePriority is ring.realtime_priority: off. Real-time
	// scheduling keeps a busy host from delaying the ring into false
	// removals, but the whole process (its data plane too) then outranks
	// every normal process, and in the lab it added about 100 µs to the
	// tunnel hop (docs/ring.md, "Real-time scheduling"). 10 is the value
	// to turn it on with.
	DefaultRealtimePriority = 0
	MaxRealtimePriority     = 99
)

// DefaultRingPort is the ring's UDP port on every primary address.
const DefaultRingPort = 7946

// DefaultForwardPort is the inter-node tunnel's UDP port on every primary
// address (the ring's port + 1).
const DefaultForwardPort = 7947

// Filter defaults. The timeouts are the Linux kernel's nf_conntrack
// defaults (kernel 6.x, net.netfilter.nf_conntrack_*), so a flow lives as
// long through ringway as through a kernel firewall.
const (
	DefaultMaxFlows     = 1 << 20 // flow-table entries (1048576)
	DefaultMaxFragments = 1024    // first fragments tracked for their followers
	// DefaultDefer is the longest a new flow's first packet waits for its
	// register's ack: an ack takes one tunnel round trip (under 1 ms on a
	// LAN); pfsync's defer waits up to 20 ms.
	DefaultDefer = 10 * time.Millisecond
	// DefaultFillTimeout bounds a joining node's fill: copies of a few
	// hundred thousand flows take well under a second on a LAN.
	DefaultFillTimeout = 5 * time.Second

	DefaultTCPSynSent     = 2 * time.Minute    // nf_conntrack_tcp_timeout_syn_sent 120
	DefaultTCPSynRecv     = 60 * time.Second   // nf_conntrack_tcp_timeout_syn_recv 60
	DefaultTCPEstablished = 5 * 24 * time.Hour // nf_conntrack_tcp_timeout_established 432000 (5 days)
	DefaultTCPFinWait     = 2 * time.Minute    // nf_conntrack_tcp_timeout_fin_wait 120
	DefaultTCPCloseWait   = 60 * time.Second   // nf_conntrack_tcp_timeout_close_wait 60
	DefaultTCPLastAck     = 30 * time.Second   // nf_conntrack_tcp_timeout_last_ack 30
	DefaultTCPTimeWait    = 2 * time.Minute    // nf_conntrack_tcp_timeout_time_wait 120
	DefaultTCPClose       = 10 * time.Second   // nf_conntrack_tcp_timeout_close 10
	DefaultUDP            = 30 * time.Second   // nf_conntrack_udp_timeout 30 (unreplied)
	DefaultUDPStream      = 2 * time.Minute    // nf_conntrack_udp_timeout_stream 120 (assured)
	DefaultICMP           = 30 * time.Second   // nf_conntrack_icmp_timeout 30
)

// MaxMaxFlows bounds filter.max_flows: 64 Mi entries at the ≤ 128 bytes
// per flow the forward package aims for is already 8 GiB.
const MaxMaxFlows = 64 << 20

// MaxMaxFragments bounds filter.max_fragments.
const MaxMaxFragments = 1 << 20

// MaxDefer bounds filter.defer: a first packet held longer than a second
// would cost more than the race it closes (TCP's first SYN retransmission
// comes after 1 s, RFC 6298).
const MaxDefer = time.Second

// MinFillTimeout and MaxFillTimeout bound filter.fill_timeout: below
// 100 ms a fill cannot finish even on an idle LAN; above 10 minutes a
// node that cannot get its copies stays out of its rows too long.
const (
	MinFillTimeout = 100 * time.Millisecond
	MaxFillTimeout = 10 * time.Minute
)

// MaxAckRetries bounds ring.ack_retries: the resend timeout doubles each
// time, so 10 retries at the default 10 ms ack_timeout already take 20 s.
const MaxAckRetries = 10

// DefaultConfig returns a Config with every default set. The node map,
// subnets and node.id have no default: a file must provide them.
func DefaultConfig() Config {
	return Config{
		Cluster: Cluster{
			Name:    "ringway",                  // shown by status
			KeyFile: "/etc/ringway/cluster.key", // 64 hex chars
		},
		Quorum: QuorumAvailability, // every partition serves (patent: alone mode)
		Ring: Ring{
			Port:        DefaultRingPort,
			Tick:        DefaultTick,
			HopInterval: DefaultHopInterval,
			MinRotation: DefaultMinRotation,
			AckTimeout:  DefaultAckTimeout,
			AckRetries:  DefaultAckRetries,
			TokenLoss:   DefaultTokenLoss,
			JoinTimeout: DefaultJoinTimeout,

			RealtimePriority: DefaultRealtimePriority,
		},
		Monitors: Monitors{
			NIC: NICMonitor{
				Enabled:  true,                   // link down = node unhealthy
				Interval: 100 * time.Millisecond, // link state poll
			},
			Application: ApplicationMonitor{
				Enabled:  false,       // no application check unless asked
				Interval: time.Second, // between checks
				Command:  "",          // "" = built-in dummy-packet check
				User:     "",          // "" = the node's own user runs Command
			},
			Ping: PingMonitor{
				Enabled:  false,                  // patent: disableMonitor() is the default
				Interval: time.Second,            // between rounds of pings
				Timeout:  500 * time.Millisecond, // per echo request
				Targets:  nil,                    // hosts/routers to ping
			},
		},
		Balancing: Balancing{
			Enabled:   true,             // patent: on by default
			Threshold: 0.25,             // fraction of the mean node load
			MinRate:   125_000,          // bytes/s (1 Mbit/s): below, nothing moves
			Cooldown:  30 * time.Second, // a balanced VIP stays put this long
		},
		Router: Router{
			GARP: GARP{
				Count:    3,                // announcements on acquiring a VIP
				Interval: time.Second,      // between them
				Refresh:  30 * time.Second, // periodic re-announcement (0 = off)
				Rate:     1000,             // GARPs per second, at most, in a burst
			},
			ARPCache: ARPCache{
				TTL:   60 * time.Second, // resolved next hop lifetime
				Queue: 3,                // packets queued per unresolved next hop
			},
		},
		Filter: Filter{
			Enabled:      false,               // absent or off = stateless forwarding
			Default:      ActionDrop,          // verdict for a new flow no rule matches
			Rules:        nil,                 // first match wins
			Local:        nil,                 // no OS service reachable on VIPs
			MaxFlows:     DefaultMaxFlows,     // flow-table entries
			MaxFragments: DefaultMaxFragments, // tracked first fragments
			Defer:        DefaultDefer,        // longest wait of a new flow's first packet for its register's ack
			Replication:  true,                // flows' state to their authoritative node and standby
			FillTimeout:  DefaultFillTimeout,  // longest a joining node waits for its rows' copies
			Timeouts: Timeouts{ // idle time per state
				TCPSynSent:     DefaultTCPSynSent,
				TCPSynRecv:     DefaultTCPSynRecv,
				TCPEstablished: DefaultTCPEstablished,
				TCPFinWait:     DefaultTCPFinWait,
				TCPCloseWait:   DefaultTCPCloseWait,
				TCPLastAck:     DefaultTCPLastAck,
				TCPTimeWait:    DefaultTCPTimeWait,
				TCPClose:       DefaultTCPClose,
				UDP:            DefaultUDP,
				UDPStream:      DefaultUDPStream,
				ICMP:           DefaultICMP,
			},
		},
		Forward: Forward{
			Port: DefaultForwardPort, // UDP, on every primary address
		},
		Management: Management{
			Listen:    "127.0.0.1:9440",           // host:port; "" = off
			TokenFile: "/etc/ringway/admin.token", // bearer token for the API
			TLSCert:   "",                         // "" = plain HTTP
			TLSKey:    "",
		},
	}
}

// TestConfig returns a valid three-node, two-subnet config shaped like the
// reference lab, with short timers, for tests in other packages.
func TestConfig() Config {
	c, err := Parse("testconfig.yaml", []byte(testConfigYAML))
	if err != nil {
		panic("config: TestConfig does not validate: " + err.Error())
	}
	c.File = ""
	c.src = nil
	return *c
}

const testConfigYAML = `
cluster: {name: test, key_file: cluster.key}
node: {id: n1}
nodes:
  - {id: n1, addresses: [203.0.113.1, 198.51.100.1]}
  - {id: n2, addresses: [203.0.113.2, 198.51.100.2]}
  - {id: n3, addresses: [203.0.113.3, 198.51.100.3]}
subnets:
  - {name: ext, interface: ext0, prefix: 203.0.113.0/24, vips: [203.0.113.91-203.0.113.94]}
  - {name: int, interface: int0, prefix: 198.51.100.0/24, vips: [198.51.100.91-198.51.100.94]}
ring: {tick: 1ms, hop_interval: 1ms, ack_timeout: 2ms, join_timeout: 20ms}
management: {listen: ""}
`

// Core maps the ring section onto the ring core's configuration for a
// node map of n nodes (IDs 1..n): every duration in whole ticks, rounded up,
// at least one. The caller sets ID, Paths, Quorum, Holder and Rand. The
// derived timers below are the core's, so config check and the running
// node agree.
func (r Ring) Core(n int) ring.Config {
	c := ring.DefaultConfig()
	c.Nodes = make([]ring.NodeID, max(n, 0))
	for i := range c.Nodes {
		c.Nodes[i] = ring.NodeID(i + 1)
	}
	t := r.Tick
	c.HopInterval = ticks(r.HopInterval, t)
	c.MinRotation = ticks(r.MinRotation, t) // 0 stays off
	c.AckTimeout = ticks(r.AckTimeout, t)
	c.AckRetries = r.AckRetries
	c.TokenLoss = ticks(r.TokenLoss, t) // 0 stays automatic
	c.JoinTimeout = ticks(r.JoinTimeout, t)
	return c
}

// ticks converts a duration to whole ticks, rounding up, at least 1; 0 for
// zero or negative durations (and for a tick that is not positive).
func ticks(d, tick time.Duration) int {
	if d <= 0 || tick <= 0 {
		return 0
	}
	n := (d + tick - 1) / tick
	if n > math.MaxInt32 {
		n = math.MaxInt32
	}
	return max(int(n), 1)
}

// HoldFor is how long each holder keeps the token in a healthy ring of n
// members: hop_interval, or min_rotation / n when that is longer.
func (r Ring) HoldFor(n int) time.Duration {
	return time.Duration(r.Core(n).Hold(n)) * r.Tick
}

// RotationFor is one full rotation of the token around n nodes when
// nothing fails: n × (hold + about one tick of transit).
func (r Ring) RotationFor(n int) time.Duration {
	return time.Duration(r.Core(n).Rotation()) * r.Tick
}

// AckBudget is the time from the first send of a packet to the moment its
// destination is declared dead: AckTimeout × (2^(AckRetries+1) − 1), since
// the timeout doubles after every resend.
func (r Ring) AckBudget() time.Duration {
	return time.Duration(r.Core(0).AckBudget()) * r.Tick
}

// MinTokenLoss is the shortest token_loss accepted for n nodes: the longest
// the token is away from a member in a healthy ring (n − 1 holds and
// transits) plus the ack budget. Anything shorter would send a 911 while a
// healthy token is merely held or resent.
func (r Ring) MinTokenLoss(n int) time.Duration {
	return time.Duration(r.Core(n).MinTokenLossTicks()) * r.Tick
}

// TokenLossFor is the effective token-loss timeout for n nodes: TokenLoss
// when set, otherwise MinTokenLoss plus 2 ticks.
func (r Ring) TokenLossFor(n int) time.Duration {
	if r.TokenLoss > 0 {
		return r.TokenLoss
	}
	return time.Duration(r.Core(n).TokenLossTicks()) * r.Tick
}

// Persistence is a VIP's stickiness, the patent's flags (none 0, current 1,
// preferred 3): the VIP table's own type, spelt none, current or preferred.
type Persistence = vipstate.Persistence

// The persistence values, as in vipstate.
const (
	PersistNone      = vipstate.PersistNone
	PersistCurrent   = vipstate.PersistCurrent
	PersistPreferred = vipstate.PersistPreferred
)

// Quorum decides what a partition does with its VIPs.
type Quorum uint8

const (
	// QuorumAvailability: every partition serves all VIPs (the patent's
	// alone mode); after a heal the rings merge.
	QuorumAvailability Quorum = iota
	// QuorumMajority: a ring with fewer than a majority of the node map
	// releases its VIPs.
	QuorumMajority
)

// String returns the config spelling.
func (q Quorum) String() string {
	switch q {
	case QuorumAvailability:
		return "availability"
	case QuorumMajority:
		return "majority"
	}
	return fmt.Sprintf("Quorum(%d)", uint8(q))
}

// MarshalText implements encoding.TextMarshaler.
func (q Quorum) MarshalText() ([]byte, error) { return []byte(q.String()), nil }

// UnmarshalText accepts availability or majority.
func (q *Quorum) UnmarshalText(b []byte) error {
	switch string(b) {
	case "availability":
		*q = QuorumAvailability
	case "majority":
		*q = QuorumMajority
	default:
		return fmt.Errorf("quorum %q is not known; write availability or majority", b)
	}
	return nil
}
