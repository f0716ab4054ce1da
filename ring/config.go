package ring

import (
	"errors"
	"fmt"
)

// TickMillis is the tick the default timers assume, in milliseconds. The
// driver may tick at another rate; the timers are counted in ticks.
const TickMillis = 2

// Limits on what the core accepts, so that no input makes it allocate
// without bound.
const (
	// MaxNodes is the largest node map.
	MaxNodes = 1024
	// MaxPaths is the largest number of redundant paths.
	MaxPaths = 8
	// MaxCarriages is the most carriages a token may carry.
	MaxCarriages = 256
	// MaxHolderCarriages is the most a Holder may put on the token (and
	// the most a token may bring it): one place stays for the core's own
	// carriage (KindCauses).
	MaxHolderCarriages = MaxCarriages - 1
	// DefaultMaxMessage is the default cap on one reassembled message, in bytes.
	DefaultMaxMessage = 1 << 20
)

// Config configures a Node. Timers are in ticks.
type Config struct {
	ID     NodeID   // this node; must appear in Nodes
	Nodes  []NodeID // the node map in ring order, ID included
	Paths  int      // redundant paths (subnets) to every node, ≥ 1
	Holder Holder   // reads and changes the carriages; pure
	Rand   func() uint64
	// Clock, when set, reads the wall clock in Unix microseconds. The
	// core only stamps it on causes (Cause.LastAck: when the last ack of
	// a node it dropped arrived), for the detection-to-GARP histogram;
	// no decision depends on it. nil: causes carry no time.
	Clock  func() int64
	Quorum Quorum

	HopInterval int // least ticks the holder keeps the token before passing it on
	// MinRotation is the least ticks one rotation of the token takes: with
	// few members each holds the token longer than HopInterval (see Hold).
	// Every hop costs every node a few thread wakeups, so this bounds the
	// CPU a small ring spends; 0 turns it off.
	MinRotation int
	AckTimeout  int // ticks before the first resend of an unacked packet; doubles per resend
	AckRetries  int // resends before a message (a hop) fails
	TokenLoss   int // ticks without a token before a 911; 0 = automatic, see TokenLossTicks
	JoinTimeout int // ticks a starting node waits for a ring before going alone
	// ProbeInterval is how often, in ticks, the holder sends a hello to
	// node-map nodes outside its ring, to find rings to merge with.
	ProbeInterval int
	MaxMessage    int  // largest reassembled message, bytes
	TraceTokens   bool // also emit an Event for every token accepted (transcripts)
	// FixedTimers turns the adaptive timeouts off (adapt.go) in node
	// maps of AdaptiveFrom nodes or more (smaller ones never adapt):
	// every message's first resend after AckTimeout, the 911's wait and
	// the token loss as configured, whatever the node measures. For
	// comparisons.
	FixedTimers bool
}

// DefaultConfig returns the production timers (2 ms ticks); ID, Nodes,
// Holder and Rand must still be set. docs/ring.md explains each number
// from the measurements of `make bench-ring`.
func DefaultConfig() Config {
	return Config{
		Paths:         1,
		Quorum:        Availability, // every partition serves (patent alone mode)
		HopInterval:   2,            // at least 4 ms per hop (large rings)
		MinRotation:   20,           // at least 40 ms per rotation (small rings): < 1 % CPU at N=3
		AckTimeout:    2,            // 4 ms first resend (LAN RTT is < 1 ms)
		AckRetries:    2,            // 4+8+16 = 28 ms from first send to a failed hop
		TokenLoss:     0,            // automatic: longest gap between visits + ack budget + slack
		JoinTimeout:   100,          // 200 ms start-up wait before alone mode
		ProbeInterval: 25,           // 50 ms between merge probes of outside nodes
		MaxMessage:    DefaultMaxMessage,
	}
}

// TestConfig returns DefaultConfig with a node map of three nodes, ID 1,
// and a toy randomness source; tests override what they need.
func TestConfig() Config {
	c := DefaultConfig()
	c.ID = 1
	c.Nodes = []NodeID{1, 2, 3}
	var x uint64 = 0x9e3779b97f4a7c15
	c.Rand = func() uint64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
	c.Holder = HolderFunc(func(t TokenView) []Carriage { return t.Carriages })
	return c
}

// AckBudget is the ticks from the first send of a message to its failure:
// AckTimeout × (2^(AckRetries+1) − 1).
func (c Config) AckBudget() int {
	return c.AckTimeout * ((1 << (c.AckRetries + 1)) - 1)
}

// Hold is the ticks a holder keeps the token in a ring of members
// members: HopInterval, or longer when the ring is small, so that a
// rotation takes about MinRotation (MinRotation / members, rounded).
// A node alone holds it for MinRotation (at least one tick) between runs
// of its Holder.
func (c Config) Hold(members int) int {
	h := c.HopInterval
	if members >= 1 && c.MinRotation > 0 {
		h = max(h, (c.MinRotation+members/2)/members)
	}
	return max(h, 1)
}

// Rotation is the ticks one rotation of the token takes around the whole
// node map when nothing fails: one hold plus about one tick of transit
// per node.
func (c Config) Rotation() int {
	n := len(c.Nodes)
	return n * (c.Hold(n) + 1)
}

// gapTicks is the longest a member waits, in a healthy ring of m members,
// between handing the token on and receiving it again: m − 1 holds and
// transits.
func (c Config) gapTicks(m int) int { return (m - 1) * (c.Hold(m) + 1) }

// MinTokenLossTicks is the shortest token-loss timeout that does not send
// a 911 in a healthy ring: the longest a member waits for the token in a
// ring of any size up to the node map's, plus one failed hop (a hop being
// resent somewhere in the ring delays the token by up to the ack budget).
func (c Config) MinTokenLossTicks() int {
	gap := 0
	for m := 2; m <= len(c.Nodes); m++ {
		gap = max(gap, c.gapTicks(m))
	}
	return gap + c.AckBudget()
}

// TokenLossTicks is the effective token-loss timeout: TokenLoss when set,
// otherwise MinTokenLossTicks plus 2 ticks of slack. A 911 sent early is
// harmless (the holder answers "holding" and the asker waits), so it adds
// no more.
func (c Config) TokenLossTicks() int {
	if c.TokenLoss > 0 {
		return c.TokenLoss
	}
	return c.MinTokenLossTicks() + 2
}

// MaxLeaseTicks bounds the serving lease of quorum mode majority (ring
// lease.go): the static token-loss timeout plus the longest hold plus 2
// ticks. Adaptive timeouts (AdaptiveFrom) may lengthen it by the measured
// gap between the token's visits.
func (c Config) MaxLeaseTicks() int { return c.TokenLossTicks() + c.Hold(1) + 2 }

func (c *Config) validate() error {
	if c.ID == 0 {
		return errors.New("ring: Config.ID is 0; set it to this node's 1-based position in the node map")
	}
	if len(c.Nodes) == 0 || len(c.Nodes) > MaxNodes {
		return fmt.Errorf("ring: node map has %d nodes; it needs 1 to %d", len(c.Nodes), MaxNodes)
	}
	seen := make(map[NodeID]bool, len(c.Nodes))
	for _, n := range c.Nodes {
		if n == 0 {
			return errors.New("ring: node map contains node 0; node ids are 1-based")
		}
		if seen[n] {
			return fmt.Errorf("ring: node %d appears twice in the node map", n)
		}
		seen[n] = true
	}
	if !seen[c.ID] {
		return fmt.Errorf("ring: this node (%d) is not in the node map %v", c.ID, c.Nodes)
	}
	if c.Paths < 1 || c.Paths > MaxPaths {
		return fmt.Errorf("ring: Paths is %d; it must be 1 to %d (one per shared subnet)", c.Paths, MaxPaths)
	}
	if c.Holder == nil {
		return errors.New("ring: Config.Holder is nil; the node package provides one (ringstate)")
	}
	if c.Rand == nil {
		return errors.New("ring: Config.Rand is nil; inject a random source")
	}
	if c.Quorum != Availability && c.Quorum != Majority {
		return fmt.Errorf("ring: unknown quorum mode %d", c.Quorum)
	}
	for _, t := range []struct {
		name string
		v    int
		min  int
	}{
		{"HopInterval", c.HopInterval, 0},
		{"MinRotation", c.MinRotation, 0},
		{"AckTimeout", c.AckTimeout, 1},
		{"AckRetries", c.AckRetries, 0},
		{"TokenLoss", c.TokenLoss, 0},
		{"JoinTimeout", c.JoinTimeout, 1},
		{"ProbeInterval", c.ProbeInterval, 1},
	} {
		if t.v < t.min || t.v > 1<<20 {
			return fmt.Errorf("ring: %s is %d ticks; it must be %d to %d", t.name, t.v, t.min, 1<<20)
		}
	}
	if c.AckRetries > 10 {
		return fmt.Errorf("ring: AckRetries is %d; at most 10 (the timeout doubles each resend)", c.AckRetries)
	}
	if c.AckBudget() < 2 {
		return fmt.Errorf("ring: the ack budget (AckTimeout %d × (2^(AckRetries+1) − 1)) is %d tick; a hop would fail on an ordinary round trip that crosses a tick; raise AckTimeout or AckRetries",
			c.AckTimeout, c.AckBudget())
	}
	if least := c.MinTokenLossTicks(); c.TokenLoss > 0 && c.TokenLoss < least {
		return fmt.Errorf("ring: TokenLoss %d ticks is shorter than the token's longest healthy absence plus one failed hop (%d); raise it or set 0 for automatic",
			c.TokenLoss, least)
	}
	if c.MaxMessage < MaxPacket || c.MaxMessage > 64<<20 {
		return fmt.Errorf("ring: MaxMessage is %d bytes; it must be %d to %d", c.MaxMessage, MaxPacket, 64<<20)
	}
	return nil
}
