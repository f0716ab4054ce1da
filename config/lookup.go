package config

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"
)

// The node map numbers nodes from 1 in ring order (docs/internals.md:
// ring.NodeID and vipstate.Node carry the same number; 0 means no node).

// LocalIndex is this node's 1-based position in the node map, 0 if node.id
// is not in it (Validate rejects that).
func (c *Config) LocalIndex() int { return c.IndexOf(c.Node.ID) }

// IndexOf is the 1-based node-map position of the node with the given id,
// or 0 if there is none.
func (c *Config) IndexOf(id string) int {
	for i, n := range c.Nodes {
		if n.ID == id && id != "" {
			return i + 1
		}
	}
	return 0
}

// NodeID is the id of the node at 1-based position index, or "" when index
// is out of range.
func (c *Config) NodeID(index int) string {
	if index < 1 || index > len(c.Nodes) {
		return ""
	}
	return c.Nodes[index-1].ID
}

// PrimaryAddress is the primary address of the node at 1-based index in the
// subnet at 0-based position subnet (an index into Subnets), or the zero
// Addr if there is none.
func (c *Config) PrimaryAddress(index, subnet int) netip.Addr {
	if index < 1 || index > len(c.Nodes) || subnet < 0 || subnet >= len(c.Subnets) {
		return netip.Addr{}
	}
	for _, a := range c.Nodes[index-1].Addresses {
		if c.Subnets[subnet].Prefix.Contains(a) {
			return a
		}
	}
	return netip.Addr{}
}

// LocalAddresses is this node's primary address in each subnet, indexed
// like Subnets.
func (c *Config) LocalAddresses() []netip.Addr {
	out := make([]netip.Addr, len(c.Subnets))
	self := c.LocalIndex()
	for i := range c.Subnets {
		out[i] = c.PrimaryAddress(self, i)
	}
	return out
}

// SubnetOf is the 0-based index of the subnet whose prefix holds a, or -1.
func (c *Config) SubnetOf(a netip.Addr) int { return c.subnetIndex(a) }

// VIP is one virtual address with its effective policy.
type VIP struct {
	Addr        netip.Addr
	Subnet      int // 0-based index into Config.Subnets
	Preferred   int // 1-based node index; 0 = no preference
	Persistence Persistence
	Group       string // "" = moves alone
}

// AllVIPs lists every VIP of every subnet with its policy (VIPs without a
// vips: entry get persistence none, no preference, no group), ordered by
// subnet index and then by address, so every node derives the same table.
func (c *Config) AllVIPs() []VIP {
	pol := make(map[netip.Addr]VIPPolicy, len(c.VIPs))
	for _, p := range c.VIPs {
		pol[p.VIP] = p
	}
	var out []VIP
	for i, s := range c.Subnets {
		for _, a := range s.VIPs {
			p := pol[a]
			out = append(out, VIP{Addr: a, Subnet: i, Preferred: c.IndexOf(p.Preferred), Persistence: p.Persistence, Group: p.Group})
		}
	}
	slices.SortStableFunc(out, func(x, y VIP) int {
		if x.Subnet != y.Subnet {
			return cmp.Compare(x.Subnet, y.Subnet)
		}
		return x.Addr.Compare(y.Addr)
	})
	return out
}

// TokenLoss is the effective token-loss timeout for this node map (see
// Ring.TokenLossFor).
func (c *Config) TokenLoss() time.Duration { return c.Ring.TokenLossFor(len(c.Nodes)) }

// Warnings lists what `config check` and a starting node point out without
// refusing the file: a management API that listens beyond loopback without
// TLS (its bearer token would cross the network in clear), an enabled
// filter through which nothing passes, and a disabled one whose rules are
// ignored.
func (c *Config) Warnings() []string {
	var out []string
	out = append(out, c.filterWarnings()...)
	if m := c.Management; m.Listen != "" && m.TLSCert == "" {
		host, _, err := net.SplitHostPort(m.Listen)
		a, perr := netip.ParseAddr(host)
		if err == nil && host != "localhost" && (perr != nil || !a.IsLoopback()) {
			where := host
			if host == "" {
				where = "every address"
			}
			out = append(out, fmt.Sprintf("management.listen %s serves the API on %s without TLS: the admin token crosses the network in clear; set management.tls_cert and management.tls_key, or listen on 127.0.0.1", m.Listen, where))
		}
	}
	return out
}

// Summary is a one-line description, e.g. "cluster lab, node n1 (1 of 3),
// 2 subnets, 8 VIPs, 1 route", followed by ", filter on (2 rules, default
// drop, 1 local service)" when the filter is enabled.
func (c *Config) Summary() string {
	vips := 0
	for _, s := range c.Subnets {
		vips += len(s.VIPs)
	}
	s := fmt.Sprintf("cluster %s, node %s (%d of %d), %s, %s, %s",
		c.Cluster.Name, c.Node.ID, c.LocalIndex(), len(c.Nodes),
		plural(len(c.Subnets), "subnet"), plural(vips, "VIP"), plural(len(c.Routes), "route"))
	if f := c.Filter; c.FilterEnabled() {
		s += fmt.Sprintf(", filter on (%s, default %v, %s)",
			plural(len(f.Rules), "rule"), f.Default, plural(len(f.Local), "local service"))
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
