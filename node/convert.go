package node

import (
	"fmt"
	"math"
	"net/netip"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/vipstate"
)

// ringConfig maps the config file onto the ring core's configuration. The
// holder and randomness are set by the caller.
func ringConfig(c *config.Config) ring.Config {
	rc := c.Ring.Core(len(c.Nodes))
	rc.ID = ring.NodeID(c.LocalIndex())
	rc.Paths = len(c.Subnets)
	if c.Quorum == config.QuorumMajority {
		rc.Quorum = ring.Majority
	}
	return rc
}

// initialTable builds the VIP table the config describes: every VIP with its
// policy, owned by nobody until a ring places it.
func initialTable(c *config.Config) (vipstate.Table, error) {
	groups := map[string]uint16{}
	var rows []vipstate.Row
	for _, v := range c.AllVIPs() {
		r := vipstate.Row{
			VIP:         v.Addr,
			Subnet:      uint8(v.Subnet),
			Preferred:   vipstate.Node(v.Preferred),
			Persistence: v.Persistence,
		}
		if v.Group != "" {
			g, ok := groups[v.Group]
			if !ok {
				g = uint16(len(groups) + 1)
				groups[v.Group] = g
			}
			r.Group = g
		}
		rows = append(rows, r)
	}
	t, err := vipstate.New(len(c.Nodes), rows)
	if err != nil {
		return t, fmt.Errorf("build the VIP table from %s: %w", c.File, err)
	}
	return t, nil
}

// groupNames inverts initialTable's group numbering for status output.
func groupNames(c *config.Config) map[uint16]string {
	names := map[uint16]string{}
	seen := map[string]bool{}
	for _, v := range c.AllVIPs() {
		if v.Group != "" && !seen[v.Group] {
			seen[v.Group] = true
			names[uint16(len(names)+1)] = v.Group
		}
	}
	return names
}

// balanceConfig maps balancing: onto vipstate's, converting the cooldown from
// time to token rotations at this node map's nominal rotation time.
func balanceConfig(c *config.Config) vipstate.BalanceConfig {
	b := vipstate.DefaultBalanceConfig()
	b.Enabled = c.Balancing.Enabled
	b.Threshold = uint32(math.Round(c.Balancing.Threshold * 100))
	if c.Balancing.MinRate > 0 {
		b.MinRate = uint64(c.Balancing.MinRate)
	}
	if rot := c.Ring.RotationFor(len(c.Nodes)); rot > 0 && c.Balancing.Cooldown > 0 {
		b.Cooldown = uint32(min(int64(c.Balancing.Cooldown/rot), math.MaxUint32))
	}
	return b
}

// ringAddrs lists every node's UDP address per path, for the ring driver.
func ringAddrs(c *config.Config, port uint16) [][]netip.AddrPort {
	out := make([][]netip.AddrPort, len(c.Nodes))
	for i := range c.Nodes {
		for s := range c.Subnets {
			out[i] = append(out[i], netip.AddrPortFrom(c.PrimaryAddress(i+1, s), port))
		}
	}
	return out
}
