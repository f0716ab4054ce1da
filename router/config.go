package router

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/vishvananda/netns"
)

// Link is one subnet NIC the router captures on.
type Link struct {
	// Name is the interface name, e.g. "ext0".
	Name string
	// Primary is the node's own kernel address on the subnet with the
	// subnet's length, e.g. 203.0.113.1/24. The kernel keeps it (the ring
	// uses it); the subnet is the connected route.
	Primary netip.Prefix
}

// Config configures a Router. Start from DefaultConfig.
type Config struct {
	// Links are the capture NICs, one per subnet. Required.
	Links []Link
	// Routes beyond the connected subnets, e.g. 0.0.0.0/0 via 203.0.113.254.
	Routes []Route
	// VIPs are every VIP of the cluster. All are configured on the TUN
	// device (the patent's Figure 15); the router answers only for owned ones.
	VIPs []netip.Addr

	// Netns is the network namespace to open sockets, the TUN device and the
	// kernel settings in. A value <= 0 means the caller's namespace.
	Netns netns.NsHandle

	// TUNName is the local-delivery device. Default "ringway0".
	TUNName string
	// TUNTable is the policy routing table that sends replies from VIPs to
	// the TUN device. Default 4207.
	TUNTable int
	// TUNRulePriority is the priority of the "from VIP lookup TUNTable"
	// rules. Default 4207 (before main at 32766).
	TUNRulePriority int

	// ManageKernel applies SetupKernel in New and restores it in Close.
	// Default true.
	ManageKernel bool

	// RxQueues is the number of receive sockets and goroutines per NIC,
	// spread by flow hash (PACKET_FANOUT_HASH keeps each flow in order).
	// Default 1.
	RxQueues int

	// Batch is frames per receive batch (recvmmsg/sendmmsg call, TUN
	// reads and writes between two flushes). Default 32.
	Batch int
	// RcvBuf is the receive buffer of each AF_PACKET socket, bytes, set with
	// SO_RCVBUFFORCE. Default 32 MiB: on the shared 2-CPU lab host 8 MiB
	// still overflowed by 12 % of a 76 kpps 64-byte stream while the router
	// thread waited for a CPU; 32 MiB dropped nothing (bench-router).
	RcvBuf int
	// RxRing is the size of each receive socket's TPACKET_V2 ring, bytes,
	// mapped and allocated at start (2 KiB a frame; larger frames pass
	// through the socket queue, within RcvBuf); 0 reads with recvmmsg
	// instead. Default 32 MiB (16384 frames, 50 ms of 300 kpps): 16 MiB
	// overflowed by 2-30 % in bench-router runs at load 3-5, 32 MiB in one
	// busy round of the 18 measured with it (3.7 %).
	// rxring_linux.go says why the ring (docs/router.md has the figures).
	RxRing int
	// TxRing is the size of each NIC's TPACKET_V2 transmit ring, bytes
	// (2 KiB a frame), mapped at start: frames up to an MTU-sized one,
	// except GSO super-frames, are written into it and sent with one
	// send(2) per batch; larger ones with sendmmsg. 0 sends everything
	// with sendmmsg. Default 1 MiB (512 frames). txring_linux.go says why.
	TxRing int
	// QdiscBypass sends with PACKET_QDISC_BYPASS (−21 % CPU per packet
	// measured here; tcpdump on the node no longer sees our transmissions).
	// Default true.
	QdiscBypass bool

	// GARPCount is the number of gratuitous ARP announcements (request and
	// reply form each) after acquiring a VIP, the first at once. Default 3.
	GARPCount int
	// GARPInterval is the gap between those announcements. Default 1 s.
	GARPInterval time.Duration
	// GARPRefresh re-announces every owned VIP this often; 0 disables.
	// Default 30 s (shorter than common host ARP cache lifetimes).
	GARPRefresh time.Duration
	// GARPRate is the sustained announcement rate across all VIPs, per
	// second. Default 500.
	GARPRate float64
	// GARPBurst is how many announcements may go out at once. Default 64.
	GARPBurst int

	// ARPDefendInterval is how often the router defends one VIP against
	// another host claiming it (an ARP request or reply with the VIP as
	// sender address and a foreign MAC: a stale owner, a split ring, a
	// spoofer): it logs a warning and broadcasts a gratuitous ARP at most
	// once per VIP per interval. Default 10 s (RFC 5227 DEFEND_INTERVAL).
	ARPDefendInterval time.Duration

	// NeighReachable is how long a learned MAC is used without re-probing.
	// Default 30 s.
	NeighReachable time.Duration
	// NeighProbeWindow is how long a stale MAC is still used while the router
	// re-probes it, before it is forgotten. Default 5 s.
	NeighProbeWindow time.Duration
	// NeighRetry is the interval between ARP requests for one host. Default 1 s.
	NeighRetry time.Duration
	// NeighTries is the number of requests before queued packets are
	// dropped. Default 3.
	NeighTries int
	// NeighQueue is the number of packets held per unresolved next hop.
	// Default 3.
	NeighQueue int
	// NeighPending is the number of next hops per link that may await an
	// ARP reply at once; a packet for one more is dropped
	// (neigh_pending_full) until one resolves or gives up (NeighTries ×
	// NeighRetry). Any host can make the router resolve every address of
	// a connected subnet. Default 1024.
	NeighPending int
	// NeighQueueBytes bounds the bytes of packets held for unresolved next
	// hops per link (a queued GSO super-frame is up to 64 KiB). Default
	// 4 MiB: 1024 next hops × 3 full-size 1500-byte frames fit.
	NeighQueueBytes int
	// NeighEntries is the number of resolved hosts the ARP cache of one
	// link holds (rounded up to a multiple of 8); a new host beyond it
	// replaces the least recently confirmed one of its hash bucket, which
	// is re-resolved when next used. About 100 bytes each. Default 8192.
	NeighEntries int

	// AttribMACs is the number of sender MACs per link whose traffic is
	// counted on the VIP they use as gateway (load balancing), rounded up
	// to a multiple of 8. A new MAC beyond it replaces the least recently
	// seen one of its hash bucket (bounded.go says why not refuse). About
	// 100 bytes per MAC. Default 4096.
	AttribMACs int

	// ICMPRate limits ICMP errors per second per receive goroutine. Default 1000.
	ICMPRate float64
	// ICMPBurst is the ICMP error burst. Default 100.
	ICMPBurst int

	// Tick is the longest the GARP and ARP cache timer sleeps. The timer
	// wakes when work is due and whenever new work is created, so Tick is
	// only a safety net; it bounds neither GARP nor ARP timing. Default 1 s.
	Tick time.Duration

	// Logger receives lifecycle logs (nothing per packet above debug).
	// Default slog.Default().
	Logger *slog.Logger

	// OnGARP, if set, is called after each gratuitous ARP announcement
	// of an owned VIP went out, with the wall-clock time it was sent (the
	// node times fail-overs with it). It runs on the timer goroutine and
	// must not block. Default nil.
	OnGARP func(vip netip.Addr, at time.Time)

	// Devices, when set, supplies the capture NICs' frame I/O and the TUN
	// device instead of opening AF_PACKET sockets and creating the TUN
	// device; New then touches no interface, socket or kernel setting
	// (ManageKernel must be false) and Run closes the devices when it stops.
	// Tests use routertest.NewFakeLink and NewFakeTUN. Default nil: the
	// real devices.
	Devices *Devices
	// Filter, if set, decides every packet the router would forward or
	// deliver to the OS through TUN (the stateful filter, package
	// forward). nil: forward everything (stateless).
	Filter Filter
	// Tunnel, if set with a Filter that is a Redirector, carries the
	// packets of flows other nodes handle (symmetric routing,
	// redirect.go); Run reads it and Close closes it. nil: no tunnel.
	Tunnel TunnelDevice
	// TunnelOverhead is what the tunnel adds to a packet it carries, in
	// bytes, outer IPv4 and UDP headers included (76 for forward's
	// tunnel). With a tunnel, TCP SYNs are clamped to an MSS that fits
	// the tunnel and larger DF packets to be tunnelled get ICMP
	// fragmentation needed (mss.go). Default 0: neither.
	TunnelOverhead int
}

// DefaultConfig returns a Config with every default set and no links.
func DefaultConfig() Config {
	return Config{
		TUNName:           "ringway0",
		TUNTable:          4207,
		TUNRulePriority:   4207,
		ManageKernel:      true,
		RxQueues:          1,
		Batch:             32,
		RcvBuf:            32 << 20,
		RxRing:            32 << 20,
		TxRing:            1 << 20,
		QdiscBypass:       true,
		GARPCount:         3,
		GARPInterval:      time.Second,
		GARPRefresh:       30 * time.Second,
		GARPRate:          500,
		GARPBurst:         64,
		ARPDefendInterval: 10 * time.Second,
		NeighReachable:    30 * time.Second,
		NeighProbeWindow:  5 * time.Second,
		NeighRetry:        time.Second,
		NeighTries:        3,
		NeighQueue:        3,
		NeighPending:      1024,
		NeighQueueBytes:   4 << 20,
		NeighEntries:      8192,
		AttribMACs:        4096,
		ICMPRate:          1000,
		ICMPBurst:         100,
		Tick:              time.Second,
	}
}

// TestConfig is DefaultConfig with short timers for tests.
func TestConfig() Config {
	c := DefaultConfig()
	c.GARPInterval = 100 * time.Millisecond
	c.GARPRefresh = time.Second
	c.NeighRetry = 100 * time.Millisecond
	c.Tick = time.Hour // tests see any timer work that fails to wake the timer
	return c
}

func (c *Config) validate() error {
	var errs []error
	if len(c.Links) == 0 {
		errs = append(errs, errors.New("no links: give at least one capture NIC in Config.Links"))
	}
	for i, l := range c.Links {
		if l.Name == "" {
			errs = append(errs, fmt.Errorf("links[%d]: empty interface name", i))
		}
		if !l.Primary.IsValid() || !l.Primary.Addr().Is4() || l.Primary.Bits() < 1 {
			errs = append(errs, fmt.Errorf("links[%d] %s: primary %v must be an IPv4 address with its subnet length, e.g. 203.0.113.1/24", i, l.Name, l.Primary))
		}
	}
	for _, v := range c.VIPs {
		if !v.Is4() {
			errs = append(errs, fmt.Errorf("vip %v: only IPv4 VIPs are supported", v))
		}
	}
	if c.TUNName == "" || len(c.TUNName) > 15 {
		errs = append(errs, fmt.Errorf("tun name %q: must be 1-15 characters", c.TUNName))
	}
	if c.RxQueues < 1 || c.RxQueues > 64 {
		errs = append(errs, fmt.Errorf("rx queues %d: must be 1..64", c.RxQueues))
	}
	if c.Batch < 1 || c.Batch > 1024 {
		errs = append(errs, fmt.Errorf("batch %d: must be 1..1024", c.Batch))
	}
	if c.TxRing != 0 && c.TxRing < ringBlockSize {
		errs = append(errs, fmt.Errorf("tx ring %d bytes: must be 0 (send with sendmmsg) or at least %d", c.TxRing, ringBlockSize))
	}
	if c.RxRing != 0 && c.RxRing < ringBlockSize {
		errs = append(errs, fmt.Errorf("rx ring %d bytes: must be 0 (read with recvmmsg) or at least %d", c.RxRing, ringBlockSize))
	}
	if c.GARPCount < 1 || c.GARPInterval <= 0 || c.GARPRefresh < 0 || c.GARPRate <= 0 || c.GARPBurst < 1 {
		errs = append(errs, errors.New("garp: count ≥ 1, interval > 0, refresh ≥ 0, rate > 0 and burst ≥ 1 are required"))
	}
	if c.ARPDefendInterval <= 0 {
		errs = append(errs, fmt.Errorf("arp defend interval %v: must be > 0 (default 10s)", c.ARPDefendInterval))
	}
	if c.NeighReachable <= 0 || c.NeighProbeWindow < 0 || c.NeighRetry <= 0 || c.NeighTries < 1 || c.NeighQueue < 1 {
		errs = append(errs, errors.New("neigh: reachable > 0, probe window ≥ 0, retry > 0, tries ≥ 1 and queue ≥ 1 are required"))
	}
	if c.NeighPending < 1 || c.NeighQueueBytes < 1<<16 || c.NeighEntries < 1 || c.AttribMACs < 1 {
		errs = append(errs, fmt.Errorf("neigh pending %d, neigh queue bytes %d, neigh entries %d, attrib MACs %d: need pending ≥ 1, queue bytes ≥ 65536 (one GSO frame), entries ≥ 1 and attrib MACs ≥ 1",
			c.NeighPending, c.NeighQueueBytes, c.NeighEntries, c.AttribMACs))
	}
	if d := c.Devices; d != nil {
		if len(d.Links) != len(c.Links) || d.TUN == nil {
			errs = append(errs, fmt.Errorf("devices: %d link devices and TUN %v for %d links; give one device per link and a TUN device", len(d.Links), d.TUN != nil, len(c.Links)))
		}
		if c.ManageKernel {
			errs = append(errs, errors.New("devices replace the real NICs: set ManageKernel to false with them"))
		}
	}
	if c.ICMPRate <= 0 || c.ICMPBurst < 1 || c.Tick <= 0 {
		errs = append(errs, errors.New("icmp rate > 0, icmp burst ≥ 1 and tick > 0 are required"))
	}
	return errors.Join(errs...)
}

func (c Config) neighConfig() neighConfig {
	return neighConfig{reachable: c.NeighReachable, probeWindow: c.NeighProbeWindow, retry: c.NeighRetry, tries: c.NeighTries, queueLen: c.NeighQueue,
		pendingMax: c.NeighPending, queueBytes: c.NeighQueueBytes, entries: c.NeighEntries}
}

func (c Config) garpConfig() garpConfig {
	return garpConfig{count: c.GARPCount, interval: c.GARPInterval, refresh: c.GARPRefresh, rate: c.GARPRate, burst: c.GARPBurst}
}

// ringBlockSize is the unit the kernel allocates a packet ring in (a
// multiple of the page size and of both rings' slot sizes), and so the
// smallest Config.RxRing and Config.TxRing.
const ringBlockSize = 64 << 10
