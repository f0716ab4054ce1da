package ringnet

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"
)

// DefaultPort is the ring's UDP port on every primary address when the
// configuration names none (the management API listens on 9440).
const DefaultPort = 9441

// Config configures a Driver. Nodes, Self and Key are required; the rest has
// defaults (DefaultConfig).
type Config struct {
	// Self is this node's position in the node map (1-based).
	Self NodeID
	// Nodes holds every node's primary addresses in node-map order:
	// Nodes[i-1][p] is node i's UDP address on path p (subnet p). Every node
	// has one address per path and the same number of paths. This node binds
	// one socket per entry of Nodes[Self-1] and sends path p's datagrams to
	// the peer's path-p address.
	Nodes [][]netip.AddrPort
	// Names are the operator's node ids (e.g. "n1"), in node-map order, used
	// in error messages only. Optional.
	Names []string
	// Key is the 32-byte cluster key (AES-256-GCM).
	Key []byte

	// Tick is the period of the core's Tick. Default 2 ms: the core's timers
	// are counted in ticks, and the crash-detection target (≤ 100 ms at 3
	// nodes) needs ack timeouts of a few tens of ms, i.e. a resolution of a
	// few ms.
	Tick time.Duration
	// Timer selects how the driver wakes for the core's timers: the zero
	// value is TimerOS where the system has it (Linux), TimerGo elsewhere.
	// TestConfig selects TimerGo, which testing/synctest's virtual clock
	// drives.
	Timer TimerKind
	// EventQueue bounds the core events waiting for Events() readers; newer
	// events are dropped and counted beyond it. Default 1024 events.
	EventQueue int
	// StaleBoot is how long a sender must have been silent before a
	// datagram with an older boot id than its last one is believed (its
	// clock went back across a restart). Default 5 s: far above the ring's
	// failure detection (tens of ms), so a live node's old packets are never
	// replayable, and short enough that a node whose clock stepped back
	// rejoins on its own.
	StaleBoot time.Duration

	// SameState reports whether committed state b, which follows a, can go
	// undelivered on States() (the reader learns nothing it acts on).
	// Default (nil): when the two differ at most in Seq. Every delivery
	// wakes the reader, and the ring commits a state on every hop.
	SameState func(a, b *State) bool

	// Listen opens one path's socket. Default ListenUDP.
	Listen ListenFunc
	// Rand supplies the 80 random bits of the boot id (16 in Header.Boot,
	// 64 in Header.Salt). Default crypto/rand.
	Rand io.Reader
	// Now is the driver's clock: the boot id, the stale-boot rule and the
	// instants the core's ticks are due at. The timers that wake the driver
	// only measure delays on it. Default time.Now.
	Now func() time.Time
	// Logger gets start-up, shutdown and error messages; nothing per datagram
	// above debug. Default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default set and no nodes.
func DefaultConfig() Config {
	return Config{
		Tick:       2 * time.Millisecond, // see Config.Tick
		EventQueue: 1024,                 // events
		StaleBoot:  5 * time.Second,
		Listen:     ListenUDP,
		Rand:       rand.Reader,
		Now:        time.Now,
		Logger:     slog.Default(),
	}
}

// TestConfig returns DefaultConfig with a short StaleBoot, for tests.
func TestConfig() Config {
	c := DefaultConfig()
	c.StaleBoot = 200 * time.Millisecond
	c.Timer = TimerGo
	return c
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Tick == 0 {
		c.Tick = d.Tick
	}
	if c.EventQueue == 0 {
		c.EventQueue = d.EventQueue
	}
	if c.StaleBoot == 0 {
		c.StaleBoot = d.StaleBoot
	}
	if c.Listen == nil {
		c.Listen = d.Listen
	}
	if c.Rand == nil {
		c.Rand = d.Rand
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c
}

func (c *Config) name(id NodeID) string {
	if int(id) >= 1 && int(id) <= len(c.Names) && c.Names[id-1] != "" {
		return c.Names[id-1]
	}
	return fmt.Sprintf("%d", id)
}

func (c *Config) validate() error {
	if len(c.Nodes) == 0 {
		return errors.New("ring: node map is empty: list the nodes and their primary addresses")
	}
	if len(c.Nodes) > 1<<16-1 {
		return fmt.Errorf("ring: node map has %d nodes, at most 65535", len(c.Nodes))
	}
	if c.Self == 0 || int(c.Self) > len(c.Nodes) {
		return fmt.Errorf("ring: this node's position %d is not in the node map (1..%d)", c.Self, len(c.Nodes))
	}
	if len(c.Key) != KeyLen {
		return fmt.Errorf("ring: cluster key is %d bytes, want %d (64 hex chars in the key file; `ringway key generate FILE`)", len(c.Key), KeyLen)
	}
	paths := len(c.Nodes[0])
	if paths == 0 || paths > MaxPaths {
		return fmt.Errorf("ring: nodes[%s] has %d addresses, want 1..%d (one per subnet)", c.name(1), paths, MaxPaths)
	}
	seen := map[netip.AddrPort]NodeID{}
	for i, as := range c.Nodes {
		id := NodeID(i + 1)
		if len(as) != paths {
			return fmt.Errorf("ring: nodes[%s] has %d addresses but nodes[%s] has %d: every node needs one primary address per subnet", c.name(id), len(as), c.name(1), paths)
		}
		for p, a := range as {
			if !a.IsValid() || a.Addr().IsUnspecified() || a.Port() == 0 {
				return fmt.Errorf("ring: nodes[%s].addresses[%d] = %v is not a usable address:port", c.name(id), p, a)
			}
			if other, dup := seen[a]; dup {
				return fmt.Errorf("ring: address %v is listed for nodes[%s] and nodes[%s]", a, c.name(other), c.name(id))
			}
			seen[a] = id
		}
	}
	if c.Timer > TimerGo {
		return fmt.Errorf("ring: unknown Timer %d; use TimerDefault, TimerOS or TimerGo", c.Timer)
	}
	if c.Tick <= 0 || c.EventQueue <= 0 || c.StaleBoot <= 0 {
		return errors.New("ring: Tick, EventQueue and StaleBoot must be positive")
	}
	return nil
}
