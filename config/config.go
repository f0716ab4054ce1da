package config

import (
	"net/netip"
	"time"
)

// Config is one node's configuration file. Every node of a cluster uses the
// same file except for Node.ID. Load or Parse fill it from YAML over
// DefaultConfig and validate it; a Config built in code is checked with
// Validate.
type Config struct {
	Cluster    Cluster     `yaml:"cluster"`
	Node       Node        `yaml:"node"`
	Nodes      []NodeEntry `yaml:"nodes"`   // the node map, in ring order
	Subnets    []Subnet    `yaml:"subnets"` // the subnets every node sits on
	Routes     []Route     `yaml:"routes"`  // beyond the connected subnets
	VIPs       []VIPPolicy `yaml:"vips"`    // optional policy per VIP
	Quorum     Quorum      `yaml:"quorum"`
	Ring       Ring        `yaml:"ring"`
	Monitors   Monitors    `yaml:"monitors"`
	Balancing  Balancing   `yaml:"balancing"`
	Router     Router      `yaml:"router"`
	Filter     Filter      `yaml:"filter"`  // absent = stateless forwarding
	Forward    Forward     `yaml:"forward"` // the inter-node tunnel
	Management Management  `yaml:"management"`

	// File is the path the config was read from; "" when built in code.
	// Error messages name it, and relative paths in the file were resolved
	// against its directory.
	File string `yaml:"-"`

	src *source // positions of the YAML nodes; nil when built in code
}

// Cluster names the cluster and its shared secret.
type Cluster struct {
	Name string `yaml:"name"`
	// KeyFile holds the cluster key: 64 hex characters (32 bytes) that
	// authenticate every ring message (and the inter-node tunnel's, once
	// it is built). Relative paths are resolved against the config file's
	// directory.
	KeyFile string `yaml:"key_file"`
}

// Node says which entry of the node map this process is.
type Node struct {
	ID string `yaml:"id"`
}

// NodeEntry is one member of the node map (the patent's nodemap.cfg line).
type NodeEntry struct {
	ID string `yaml:"id"`
	// Addresses are the node's primary addresses, exactly one inside the
	// prefix of each subnet, in any order. The ring (and later the
	// inter-node tunnel) uses them; they are ordinary kernel addresses.
	Addresses []netip.Addr `yaml:"addresses"`
}

// Subnet is one network every node is attached to, with its VIP pool (the
// patent's vip.cfg block).
type Subnet struct {
	Name      string       `yaml:"name"`      // default: the interface name
	Interface string       `yaml:"interface"` // Linux interface name, at most 15 bytes
	Prefix    netip.Prefix `yaml:"prefix"`    // e.g. 203.0.113.0/24, host bits zero
	// VIPs is the pool, expanded: the file may list single addresses and
	// ranges "a-b" (at most 65536 addresses each).
	VIPs []netip.Addr `yaml:"vips,ranges"`
}

// Route is a static route beyond the connected subnets.
type Route struct {
	To  netip.Prefix `yaml:"to"`  // destination, e.g. 0.0.0.0/0
	Via netip.Addr   `yaml:"via"` // next hop, inside a connected subnet
}

// VIPPolicy is the optional policy of one VIP. A VIP without an entry has
// persistence none, no preferred node and no group.
type VIPPolicy struct {
	VIP         netip.Addr  `yaml:"vip"`
	Preferred   string      `yaml:"preferred"`   // node id; "" = no preference
	Persistence Persistence `yaml:"persistence"` // default none
	// Group names VIPs that always move together (for example the external
	// and internal address of one gateway pair); at most one per subnet.
	Group string `yaml:"group"`
}

// Ring holds the token-ring timers (see ring defaults in defaults.go).
type Ring struct {
	// Port is the UDP port of the ring on every primary address, the same
	// on every node.
	Port int `yaml:"port"`
	// Tick is the clock of the ring state machine, which counts the other
	// ring timers in ticks.
	Tick time.Duration `yaml:"tick"`
	// HopInterval is the least time the holder keeps the token before
	// passing it.
	HopInterval time.Duration `yaml:"hop_interval"`
	// MinRotation is the least time one rotation of the token takes: in a
	// small ring each holder keeps the token min_rotation / members (when
	// that is longer than hop_interval), which bounds the ring's CPU. 0
	// turns it off.
	MinRotation time.Duration `yaml:"min_rotation"`
	// AckTimeout is the first resend of an unacknowledged packet; each
	// further resend waits twice as long as the one before.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// AckRetries is how many resends follow the first send before the
	// destination is declared dead.
	AckRetries int `yaml:"ack_retries"`
	// TokenLoss is how long a node waits without seeing the token before it
	// sends a 911. Zero means automatic: see Ring.TokenLossFor.
	TokenLoss time.Duration `yaml:"token_loss"`
	// JoinTimeout is how long a starting node waits for an answer from the
	// node map before it forms a ring alone.
	JoinTimeout time.Duration `yaml:"join_timeout"`
	// RealtimePriority runs the node's threads with real-time scheduling
	// (SCHED_RR at this priority, 1-99) so that a busy host cannot delay
	// the ring's acknowledgements into a false removal, as corosync does;
	// 0 (the default) is normal scheduling. It needs CAP_SYS_NICE at start
	// (or the unit's CPUSchedulingPolicy=rr); without it the node warns and
	// runs normally.
	RealtimePriority int `yaml:"realtime_priority"`
}

// Monitors configures the local fault detectors; a failing monitor makes
// the node give up its VIPs.
type Monitors struct {
	NIC         NICMonitor         `yaml:"nic"`
	Application ApplicationMonitor `yaml:"application"`
	Ping        PingMonitor        `yaml:"ping"`
}

// NICMonitor watches the link state of every subnet interface.
type NICMonitor struct {
	Enabled  bool          `yaml:"enabled"`
	Interval time.Duration `yaml:"interval"`
}

// ApplicationMonitor checks that the application (the data plane and its
// stateful filter) works: without Command, the built-in check has every
// packet worker of the router decide synthetic probes ("dummy packets")
// each Interval and fails when one does not answer within Interval or
// decides one wrongly (router.Router.Probe); with Command, the external
// command must exit 0.
type ApplicationMonitor struct {
	Enabled  bool          `yaml:"enabled"`
	Interval time.Duration `yaml:"interval"`
	// Command, if set, is run with /bin/sh -c at every interval; exit
	// status 0 means healthy. Empty: the built-in check.
	Command string `yaml:"command"`
	// User, if set, is the user Command runs as (from the passwd
	// database): an unprivileged account, so that a check cannot do what
	// the gateway's root process could. Empty: the node's own user (under
	// the packaged systemd unit, the unprivileged ringway user). Switching
	// users needs ringway to run as root; it then also keeps CAP_SETUID
	// and CAP_SETGID.
	User string `yaml:"user"`
}

// PingMonitor pings remote hosts or routers (the patent's localmonitor.cfg
// addMachine lines); the node is unhealthy when none of them answers.
type PingMonitor struct {
	Enabled  bool          `yaml:"enabled"`
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"` // per echo request; below Interval
	Targets  []netip.Addr  `yaml:"targets"`
}

// Balancing configures load balancing of VIPs between live nodes.
type Balancing struct {
	Enabled bool `yaml:"enabled"`
	// Threshold is the imbalance that triggers a move, as a fraction of the
	// mean node load: 0.25 moves a VIP when the busiest node carries more
	// than 1.25 times the mean.
	Threshold float64 `yaml:"threshold"`
	// MinRate is the mean node load in bytes per second below which
	// nothing is balanced.
	MinRate int64 `yaml:"min_rate"`
	// Cooldown is how long a VIP moved by balancing stays where it is.
	Cooldown time.Duration `yaml:"cooldown"`
}

// Router configures the data plane.
type Router struct {
	GARP     GARP     `yaml:"garp"`
	ARPCache ARPCache `yaml:"arp_cache"`
	// NIC offloads are not configurable: the router carries partial
	// checksums and GSO super-frames through virtio-net headers
	// (docs/router.md, "Offloads").
}

// GARP configures gratuitous ARP for VIPs a node acquires.
type GARP struct {
	Count    int           `yaml:"count"`    // announcements right after acquiring a VIP
	Interval time.Duration `yaml:"interval"` // between those announcements
	Refresh  time.Duration `yaml:"refresh"`  // periodic re-announcement; 0 = never
	Rate     int           `yaml:"rate"`     // at most this many GARPs per second in a burst
}

// ARPCache configures the userspace ARP cache for next hops.
type ARPCache struct {
	TTL   time.Duration `yaml:"ttl"`   // how long a resolved entry is used
	Queue int           `yaml:"queue"` // packets held per unresolved next hop
}

// Management configures the HTTP management API and the web console.
type Management struct {
	// Listen is host:port; "" disables the management API.
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token clients must present. Relative
	// paths are resolved against the config file's directory.
	TokenFile string `yaml:"token_file"`
	// ReadTokenFile, if set, holds a second token that may only read:
	// status, flows, metrics and the console's read-only view (give this
	// one to Prometheus and dashboards).
	ReadTokenFile string `yaml:"read_token_file"`
	// TLSCert and TLSKey, both or neither, switch the listener to HTTPS.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}
