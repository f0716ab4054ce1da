package config

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Validate checks a Config built in code (Parse and Load already did). It
// returns Errors holding every problem, or nil.
//
// Validate also resolves the subnet names in filter rules to their subnets'
// prefixes (Net.Prefix), as Parse does, so a Config built in code is ready
// for the data plane once it validates.
func (c *Config) Validate() error {
	c.resolveFilter()
	return c.validate().err()
}

type validator struct {
	c       *Config
	errs    Errors
	overlap bool // two subnets overlap: matching addresses to subnets is moot
}

// at is the position of path, or of its nearest parent the file has.
func (v *validator) at(path string) Pos {
	if v.c.src == nil {
		return Pos{}
	}
	for {
		if p, ok := v.c.src.pos[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[#")
		if i < 0 {
			if p, ok := v.c.src.pos[""]; ok && path != "" {
				return p
			}
			return Pos{Line: 1}
		}
		path = path[:i]
	}
}

func (v *validator) errorf(path string, format string, args ...any) {
	v.errorAt(v.at(path), path, format, args...)
}

func (v *validator) errorAt(p Pos, path string, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if v.c.src == nil && path != "" {
		msg = path + ": " + msg // no line numbers: name the key instead
	}
	v.errs = append(v.errs, Error{File: v.c.File, Line: p.Line, Column: p.Column, Msg: msg})
}

// broken reports whether path, or anything below it, failed to decode; the
// checks that depend on it are skipped instead of piling on.
func (v *validator) broken(path string) bool {
	if v.c.src == nil {
		return false
	}
	// No early return: the same work whatever the map order, so fuzzing
	// sees the same coverage for the same input.
	found := false
	for b := range v.c.src.bad {
		if b == path || strings.HasPrefix(b, path+".") || strings.HasPrefix(b, path+"[") || strings.HasPrefix(b, path+"#") {
			found = true
		}
	}
	return found
}

func (v *validator) line(path string) int { return v.at(path).Line }

var (
	idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)
	// userPattern is a portable user name (useradd's default NAME_REGEX).
	userPattern = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

// validIfName reports why name is not a valid Linux interface name, or "".
func validIfName(name string) string {
	switch {
	case name == "":
		return "is missing"
	case len(name) > 15:
		return fmt.Sprintf("%q is %d bytes; Linux interface names have at most 15", name, len(name))
	case name == "." || name == "..":
		return fmt.Sprintf("%q is not a valid interface name", name)
	case strings.ContainsAny(name, "/: \t\n\x00"):
		return fmt.Sprintf("%q contains a character Linux does not allow in interface names ('/', ':' or white space)", name)
	}
	return ""
}

func (c *Config) validate() Errors {
	v := &validator{c: c}
	v.cluster()
	v.nodeMap()
	v.subnets()
	v.addresses()
	v.vips()
	v.routes()
	v.policies()
	v.quorum()
	v.ring()
	v.monitors()
	v.balancing()
	v.router()
	v.filter()
	v.forward()
	v.management()
	return v.errs
}

func (v *validator) cluster() {
	c := v.c
	if !idPattern.MatchString(c.Cluster.Name) {
		v.errorf("cluster.name", "cluster.name %q: use 1-32 letters, digits, '.', '_' or '-', starting with a letter or digit", c.Cluster.Name)
	}
	if c.Cluster.KeyFile == "" {
		v.errorf("cluster.key_file", "cluster.key_file is empty; write the path of the cluster key (create one with `ringway key generate FILE`)")
	}
}

func (v *validator) nodeMap() {
	c := v.c
	if len(c.Nodes) == 0 {
		if !v.broken("nodes") {
			v.errorf("nodes", "nodes is missing or empty; list every node in ring order, e.g. nodes: [{id: n1, addresses: [192.0.2.1]}]")
		}
	}
	if len(c.Nodes) > MaxNodes {
		v.errorf("nodes", "nodes lists %d nodes; at most %d are supported", len(c.Nodes), MaxNodes)
	}
	ids := map[string]int{}
	for i, n := range c.Nodes {
		p := fmt.Sprintf("nodes[%d]", i)
		switch {
		case n.ID == "":
			if !v.broken(p + ".id") {
				v.errorf(p, "node %d of the node map has no id; add id: n%d (or another unique name)", i+1, i+1)
			}
			continue
		case !idPattern.MatchString(n.ID):
			v.errorf(p+".id", "node id %q: use 1-32 letters, digits, '.', '_' or '-', starting with a letter or digit", n.ID)
		}
		if j, dup := ids[n.ID]; dup {
			v.errorf(p+".id", "node id %q is used twice (also on line %d); give every node its own id", n.ID, v.line(fmt.Sprintf("nodes[%d].id", j)))
			continue
		}
		ids[n.ID] = i
	}
	switch {
	case c.Node.ID == "":
		if !v.broken("node.id") {
			v.errorf("node.id", "node.id is missing; write the id of this node from the node map, e.g. node: {id: %s}", firstID(c))
		}
	case len(c.Nodes) > 0 && v.idsOK():
		if _, ok := ids[c.Node.ID]; !ok {
			v.errorf("node.id", "node.id %q is not in the node map; write one of %s", c.Node.ID, strings.Join(nodeIDs(c), ", "))
		}
	}
}

// idsOK reports whether every node id decoded, so "not in the node map" is
// meaningful.
func (v *validator) idsOK() bool {
	if v.c.src != nil && v.c.src.bad["nodes"] {
		return false
	}
	for i := range v.c.Nodes {
		if v.broken(fmt.Sprintf("nodes[%d].id", i)) {
			return false
		}
	}
	return true
}

func firstID(c *Config) string {
	if len(c.Nodes) > 0 && c.Nodes[0].ID != "" {
		return c.Nodes[0].ID
	}
	return "n1"
}

func nodeIDs(c *Config) []string {
	var ids []string
	seen := map[string]bool{}
	for _, n := range c.Nodes {
		if n.ID != "" && !seen[n.ID] {
			ids = append(ids, n.ID)
			seen[n.ID] = true
		}
	}
	return ids
}

func (v *validator) subnets() {
	c := v.c
	if len(c.Subnets) == 0 && !v.broken("subnets") {
		v.errorf("subnets", "subnets is missing or empty; list the subnets the nodes sit on, each with interface and prefix")
	}
	if len(c.Subnets) > MaxSubnets {
		v.errorf("subnets", "subnets lists %d subnets; at most %d are supported (the ring uses one path per subnet)", len(c.Subnets), MaxSubnets)
	}
	names, ifaces := map[string]int{}, map[string]int{}
	for i, s := range c.Subnets {
		p := fmt.Sprintf("subnets[%d]", i)
		if why := validIfName(s.Interface); why != "" && !v.broken(p+".interface") {
			if s.Interface == "" {
				v.errorf(p, "subnet %d has no interface; add interface: <the Linux NIC on this subnet>, e.g. eth0", i+1)
			} else {
				v.errorf(p+".interface", "interface %s", why)
			}
		}
		name := s.Name
		if name == "" {
			name = s.Interface
		}
		if name != "" {
			if j, dup := names[name]; dup {
				v.errorf(p+".name", "subnet name %q is used twice (also on line %d); give each subnet its own name", name, v.line(fmt.Sprintf("subnets[%d]", j)))
			} else {
				names[name] = i
			}
		}
		if s.Interface != "" {
			if j, dup := ifaces[s.Interface]; dup {
				v.errorf(p+".interface", "interface %q serves two subnets (also on line %d); each subnet needs its own interface", s.Interface, v.line(fmt.Sprintf("subnets[%d].interface", j)))
			} else {
				ifaces[s.Interface] = i
			}
		}
		if !s.Prefix.IsValid() {
			if !v.broken(p + ".prefix") {
				v.errorf(p, "subnet %s has no prefix; add prefix: <network>/<length>, e.g. 192.0.2.0/24", subnetName(c, i))
			}
			continue
		}
		if s.Prefix.Bits() > 30 {
			v.errorf(p+".prefix", "prefix %s leaves no room for nodes and VIPs; use /30 or shorter", s.Prefix)
		}
		for j := 0; j < i; j++ {
			if o := c.Subnets[j].Prefix; o.IsValid() && o.Overlaps(s.Prefix) {
				v.overlap = true
				v.errorf(p+".prefix", "prefix %s overlaps %s of subnet %s (line %d); subnets must be disjoint", s.Prefix, o, subnetName(c, j), v.line(fmt.Sprintf("subnets[%d].prefix", j)))
			}
		}
	}
}

// subnetName is how subnet i is called in messages.
func subnetName(c *Config, i int) string {
	s := c.Subnets[i]
	switch {
	case s.Name != "":
		return s.Name
	case s.Interface != "":
		return s.Interface
	}
	return fmt.Sprintf("#%d", i+1)
}

// subnetIndex is the subnet whose prefix holds a, or -1.
func (c *Config) subnetIndex(a netip.Addr) int {
	for i, s := range c.Subnets {
		if s.Prefix.IsValid() && s.Prefix.Contains(a) {
			return i
		}
	}
	return -1
}

// special reports whether a is the network or broadcast address of p.
func special(p netip.Prefix, a netip.Addr) string {
	if p.Bits() >= 31 {
		return ""
	}
	if a == p.Addr() {
		return "the network address"
	}
	if a == lastAddr(p) {
		return "the broadcast address"
	}
	return ""
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	x := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) | host
	return netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
}

// prefixesOK reports whether every subnet prefix decoded, so address
// matching is meaningful.
func (v *validator) prefixesOK() bool {
	if v.overlap {
		return false
	}
	for i, s := range v.c.Subnets {
		if !s.Prefix.IsValid() || v.broken(fmt.Sprintf("subnets[%d].prefix", i)) {
			return false
		}
	}
	return true
}

// addresses checks the primary addresses: unique, and exactly one in every
// subnet per node.
func (v *validator) addresses() {
	c := v.c
	seen := map[netip.Addr]string{}
	matchOK := v.prefixesOK() && !v.broken("subnets")
	for i, n := range c.Nodes {
		p := fmt.Sprintf("nodes[%d]", i)
		name := n.ID
		if name == "" {
			name = fmt.Sprintf("#%d", i+1)
		}
		if len(n.Addresses) == 0 && !v.broken(p+".addresses") {
			v.errorf(p, "node %s has no addresses; add addresses: [one primary address per subnet]", name)
			continue
		}
		in := make([]int, len(c.Subnets)) // subnet → 1 + index of the address in it
		for j, a := range n.Addresses {
			ap := fmt.Sprintf("%s.addresses[%d]", p, j)
			if !a.IsValid() {
				continue
			}
			if other, dup := seen[a]; dup {
				v.errorf(ap, "address %s of node %s is also at %s; primary addresses must be unique", a, name, other)
			} else {
				seen[a] = fmt.Sprintf("node %s (line %d)", name, v.line(ap))
			}
			if !matchOK {
				continue
			}
			k := c.subnetIndex(a)
			if k < 0 {
				v.errorf(ap, "address %s of node %s is in no subnet; add a subnet whose prefix holds it, or remove it", a, name)
				continue
			}
			if why := special(c.Subnets[k].Prefix, a); why != "" {
				v.errorf(ap, "address %s of node %s is %s of subnet %s; use a host address", a, name, why, subnetName(c, k))
			}
			if in[k] != 0 {
				v.errorf(ap, "node %s has two addresses in subnet %s (%s and %s); a node has exactly one primary address per subnet", name, subnetName(c, k), n.Addresses[in[k]-1], a)
				continue
			}
			in[k] = j + 1
		}
		if !matchOK || v.broken(p+".addresses") {
			continue
		}
		for k := range c.Subnets {
			if in[k] == 0 {
				v.errorf(p+".addresses", "node %s has no address in subnet %s (%s); add its primary address there", name, subnetName(c, k), c.Subnets[k].Prefix)
			}
		}
	}
}

// vips checks the VIP pools, one message per list item as written.
func (v *validator) vips() {
	c := v.c
	primary := map[netip.Addr]string{}
	for _, n := range c.Nodes {
		for _, a := range n.Addresses {
			primary[a] = n.ID
		}
	}
	total := 0
	for _, s := range c.Subnets {
		total += len(s.VIPs)
	}
	if total > MaxVIPs {
		v.errorf("subnets", "the subnets list %d VIPs together; at most %d are supported (the VIP table rides on the token)", total, MaxVIPs)
		return
	}
	owner := map[netip.Addr]string{} // VIP → where it was first listed
	for i, s := range c.Subnets {
		p := fmt.Sprintf("subnets[%d].vips", i)
		items := v.items(p, s.VIPs)
		for _, it := range items {
			if s.Prefix.IsValid() && (!s.Prefix.Contains(it.first) || !s.Prefix.Contains(it.last)) {
				if it.n == 1 {
					v.errorAt(it.pos, p, "VIP %s is outside subnet %s (%s); move it to the subnet whose prefix holds it", it.text, subnetName(c, i), s.Prefix)
				} else {
					v.errorAt(it.pos, p, "VIP range %s leaves subnet %s (%s); keep both ends inside the prefix", it.text, subnetName(c, i), s.Prefix)
				}
				continue
			}
			var specials, primaries, dups []string
			for _, a := range s.VIPs[it.start : it.start+it.n] {
				if s.Prefix.IsValid() {
					if why := special(s.Prefix, a); why != "" {
						specials = append(specials, fmt.Sprintf("%s (%s)", a, why))
					}
				}
				if id, ok := primary[a]; ok {
					primaries = append(primaries, fmt.Sprintf("%s (node %s)", a, id))
				}
				if where, ok := owner[a]; ok {
					dups = append(dups, fmt.Sprintf("%s (also %s)", a, where))
				} else {
					owner[a] = fmt.Sprintf("in subnet %s, line %d", subnetName(c, i), it.pos.Line)
				}
			}
			switch {
			case len(specials) > 0 && it.n == 1:
				v.errorAt(it.pos, p, "VIP %s is %s of subnet %s; a VIP must be a host address", it.text, special(s.Prefix, it.first), subnetName(c, i))
			case len(specials) > 0:
				v.errorAt(it.pos, p, "VIP range %s includes %s; a VIP must be a host address", it.text, few(specials))
			}
			switch {
			case len(primaries) > 0 && it.n == 1:
				v.errorAt(it.pos, p, "VIP %s is the primary address of node %s; a VIP must not be any node's primary address", it.text, primary[it.first])
			case len(primaries) > 0:
				v.errorAt(it.pos, p, "VIP range %s includes the primary address %s; a VIP must not be any node's primary address", it.text, few(primaries))
			}
			switch {
			case len(dups) > 0 && it.n == 1:
				v.errorAt(it.pos, p, "VIP %s is listed twice (%s); list every VIP once", it.text, strings.TrimSuffix(strings.TrimPrefix(dups[0], it.text+" ("), ")"))
			case len(dups) > 0:
				v.errorAt(it.pos, p, "VIP range %s repeats %s; list every VIP once", it.text, few(dups))
			}
		}
	}
}

// few lists up to three items and counts the rest.
func few(xs []string) string {
	if len(xs) <= 3 {
		return strings.Join(xs, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(xs[:3], ", "), len(xs)-3)
}

// items returns the VIP list at path as written in the file, or one item
// per address for a Config built in code.
func (v *validator) items(path string, vips []netip.Addr) []span {
	if v.c.src != nil {
		if sp, ok := v.c.src.spans[path]; ok {
			return sp
		}
	}
	out := make([]span, len(vips))
	for i, a := range vips {
		out[i] = span{text: a.String(), first: a, last: a, start: i, n: 1, pos: v.at(fmt.Sprintf("%s[%d]", path, i))}
	}
	return out
}

func (v *validator) routes() {
	c := v.c
	vip := map[netip.Addr]bool{}
	for _, s := range c.Subnets {
		for _, a := range s.VIPs {
			vip[a] = true
		}
	}
	primary := map[netip.Addr]string{}
	for _, n := range c.Nodes {
		for _, a := range n.Addresses {
			primary[a] = n.ID
		}
	}
	to := map[netip.Prefix]int{}
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		if !r.To.IsValid() {
			if !v.broken(p + ".to") {
				v.errorf(p, "route %d has no destination; add to: <prefix>, e.g. 0.0.0.0/0", i+1)
			}
		} else if j, dup := to[r.To]; dup {
			v.errorf(p+".to", "route to %s is listed twice (also on line %d); keep one", r.To, v.line(fmt.Sprintf("routes[%d].to", j)))
		} else {
			to[r.To] = i
		}
		if !r.Via.IsValid() {
			if !v.broken(p + ".via") {
				v.errorf(p, "route %d has no next hop; add via: <router address inside a subnet>", i+1)
			}
			continue
		}
		if !v.prefixesOK() {
			continue
		}
		k := c.subnetIndex(r.Via)
		switch {
		case k < 0:
			v.errorf(p+".via", "next hop %s is in no connected subnet; use a router address inside one of %s", r.Via, strings.Join(prefixes(c), ", "))
		case special(c.Subnets[k].Prefix, r.Via) != "":
			v.errorf(p+".via", "next hop %s is %s of subnet %s; use the router's host address", r.Via, special(c.Subnets[k].Prefix, r.Via), subnetName(c, k))
		case vip[r.Via]:
			v.errorf(p+".via", "next hop %s is one of our own VIPs; use the address of the router beyond the cluster", r.Via)
		case primary[r.Via] != "":
			v.errorf(p+".via", "next hop %s is the primary address of node %s; use the address of the router beyond the cluster", r.Via, primary[r.Via])
		}
	}
}

func prefixes(c *Config) []string {
	var ps []string
	for _, s := range c.Subnets {
		ps = append(ps, s.Prefix.String())
	}
	return ps
}

func (v *validator) policies() {
	c := v.c
	where := map[netip.Addr]int{} // VIP → subnet index
	for i, s := range c.Subnets {
		for _, a := range s.VIPs {
			if _, ok := where[a]; !ok {
				where[a] = i
			}
		}
	}
	ids := map[string]bool{}
	for _, n := range c.Nodes {
		ids[n.ID] = true
	}
	listed := map[netip.Addr]int{}
	type member struct {
		vip  netip.Addr
		line int
		pol  VIPPolicy
		bad  bool // the policy had its own errors
	}
	groups := map[string]map[int]member{} // group → subnet → first member
	for i, pol := range c.VIPs {
		p := fmt.Sprintf("vips[%d]", i)
		errsBefore := len(v.errs)
		if pol.Preferred != "" && !ids[pol.Preferred] && v.idsOK() {
			v.errorf(p+".preferred", "preferred node %q is not in the node map; write one of %s", pol.Preferred, strings.Join(nodeIDs(c), ", "))
		}
		if pol.Persistence == PersistPreferred && pol.Preferred == "" && !v.broken(p+".preferred") {
			v.errorf(p+".persistence", "persistence preferred needs a preferred node; add preferred: <node id>, or use persistence current")
		}
		if pol.Persistence != PersistNone && pol.Persistence != PersistCurrent && pol.Persistence != PersistPreferred {
			v.errorf(p+".persistence", "persistence %d is not known; use none, current or preferred", pol.Persistence)
		}
		if !pol.VIP.IsValid() {
			if !v.broken(p + ".vip") {
				v.errorf(p, "vips entry %d has no vip; add vip: <address from a subnet's vips>", i+1)
			}
			continue
		}
		if j, dup := listed[pol.VIP]; dup {
			v.errorf(p+".vip", "VIP %s has a second policy (first on line %d); merge them into one entry", pol.VIP, v.line(fmt.Sprintf("vips[%d].vip", j)))
			continue
		}
		listed[pol.VIP] = i
		k, ok := where[pol.VIP]
		if !ok {
			if !v.broken("subnets") {
				v.errorf(p+".vip", "VIP %s is in no subnet's vips; add it to the vips of its subnet first", pol.VIP)
			}
			continue
		}
		if pol.Group == "" {
			continue
		}
		g := groups[pol.Group]
		if g == nil {
			g = map[int]member{}
			groups[pol.Group] = g
		}
		if m, dup := g[k]; dup {
			v.errorf(p+".group", "group %q already has VIP %s of subnet %s (line %d); a group holds at most one VIP per subnet, so use another group for %s", pol.Group, m.vip, subnetName(c, k), m.line, pol.VIP)
			continue
		}
		// A group moves as one, so its members must agree on where they
		// live: the VIP table refuses a group with mixed policies. A policy
		// already reported as wrong is not compared again.
		ok = len(v.errs) == errsBefore && !v.broken(p)
		for _, m := range g {
			if ok && !m.bad && (m.pol.Preferred != pol.Preferred || m.pol.Persistence != pol.Persistence) {
				v.errorf(p+".group", "group %q: VIP %s has preferred %q and persistence %s, but %s (line %d) has preferred %q and persistence %s; give every VIP of a group the same preferred and persistence",
					pol.Group, pol.VIP, pol.Preferred, pol.Persistence, m.vip, m.line, m.pol.Preferred, m.pol.Persistence)
			}
			break
		}
		g[k] = member{vip: pol.VIP, line: v.line(p + ".vip"), pol: pol, bad: !ok}
	}
}

func (v *validator) quorum() {
	if q := v.c.Quorum; q != QuorumAvailability && q != QuorumMajority {
		v.errorf("quorum", "quorum %d is not known; use availability or majority", q)
	}
}

// positive reports a duration that must be above zero.
func (v *validator) positive(path string, d time.Duration) bool {
	if d <= 0 && !v.broken(path) {
		v.errorf(path, "%s is %v; it must be positive, e.g. %s", path, d, "100ms")
		return false
	}
	return d > 0
}

func (v *validator) ring() {
	r := v.c.Ring
	if !v.positive("ring.tick", r.Tick) {
		return
	}
	if r.Tick < MinTick || r.Tick > MaxTick {
		v.between("ring.tick", r.Tick, MinTick, MaxTick, DefaultTick)
		return // every other ring timer is counted in ticks
	}
	for _, t := range []struct {
		key      string
		d        time.Duration
		max, def time.Duration
	}{
		{"ring.hop_interval", r.HopInterval, MaxHopInterval, DefaultHopInterval},
		{"ring.ack_timeout", r.AckTimeout, MaxAckTimeout, DefaultAckTimeout},
		{"ring.join_timeout", r.JoinTimeout, MaxJoinTimeout, DefaultJoinTimeout},
	} {
		switch {
		case !v.positive(t.key, t.d):
		case t.d < r.Tick:
			v.errorf(t.key, "%s is %v, shorter than ring.tick (%v); make it at least one tick", t.key, t.d, r.Tick)
		case t.d > t.max:
			v.errorf(t.key, "%s is %v; write one tick (%v) to %v (default %v)", t.key, t.d, r.Tick, t.max, t.def)
		}
	}
	if r.MinRotation < 0 {
		v.errorf("ring.min_rotation", "ring.min_rotation is %v; write 0 to turn it off or a positive duration (default %v)", r.MinRotation, DefaultMinRotation)
	} else if r.MinRotation > MaxMinRotation {
		v.errorf("ring.min_rotation", "ring.min_rotation is %v; write 0 to turn it off or at most %v (default %v)", r.MinRotation, MaxMinRotation, DefaultMinRotation)
	}
	if r.RealtimePriority < 0 || r.RealtimePriority > MaxRealtimePriority {
		v.errorf("ring.realtime_priority", "ring.realtime_priority is %d; write 0 for normal scheduling or a SCHED_RR priority from 1 to %d (default %d)", r.RealtimePriority, MaxRealtimePriority, DefaultRealtimePriority)
	}
	if r.Port < 1 || r.Port > 65535 {
		v.errorf("ring.port", "ring.port is %d; use a UDP port from 1 to 65535 (default %d), the same on every node", r.Port, DefaultRingPort)
	}
	if r.AckRetries < 0 || r.AckRetries > MaxAckRetries {
		v.errorf("ring.ack_retries", "ring.ack_retries is %d; use 0 to %d", r.AckRetries, MaxAckRetries)
		return
	}
	if r.AckTimeout > 0 && r.Tick > 0 {
		if b := r.Core(0).AckBudget(); b < 2 {
			v.errorf("ring.ack_timeout", "ring.ack_timeout %v with ring.ack_retries %d gives an ack budget of %d tick (%v): a hop would fail on an ordinary round trip that crosses a tick; raise ack_timeout or ack_retries", r.AckTimeout, r.AckRetries, b, r.AckBudget())
		}
	}
	switch {
	case r.TokenLoss < 0:
		v.errorf("ring.token_loss", "ring.token_loss is %v; write 0 for automatic or a positive duration", r.TokenLoss)
	case r.TokenLoss > MaxTokenLoss:
		v.errorf("ring.token_loss", "ring.token_loss is %v; write 0 for automatic or at most %v", r.TokenLoss, MaxTokenLoss)
	case r.TokenLoss > 0 && len(v.c.Nodes) > 0 && r.HopInterval > 0 && r.AckTimeout > 0 && r.MinRotation >= 0:
		n := len(v.c.Nodes)
		auto := r
		auto.TokenLoss = 0
		if least := r.MinTokenLoss(n); r.TokenLoss < least {
			v.errorf("ring.token_loss", "ring.token_loss %v is too short: with %d nodes a healthy token is away from a node for up to %v, and a failed hop adds the ack budget %v (ack_timeout × (2^(ack_retries+1) − 1)); write at least %v, or 0 for automatic (%v)",
				r.TokenLoss, n, least-r.AckBudget(), r.AckBudget(), least, auto.TokenLossFor(n))
		}
	}
}

func (v *validator) monitors() {
	m, d := v.c.Monitors, DefaultConfig().Monitors
	if v.positive("monitors.nic.interval", m.NIC.Interval) {
		v.between("monitors.nic.interval", m.NIC.Interval, MinMonitorInterval, MaxMonitorInterval, d.NIC.Interval)
	}
	if v.positive("monitors.application.interval", m.Application.Interval) {
		v.between("monitors.application.interval", m.Application.Interval, MinMonitorInterval, MaxMonitorInterval, d.Application.Interval)
	}
	if u := m.Application.User; u != "" {
		switch {
		case !userPattern.MatchString(u):
			v.errorf("monitors.application.user", "monitors.application.user %q is not a user name; write an unprivileged account such as nobody, or leave it empty", u)
		case m.Application.Command == "":
			v.errorf("monitors.application.user", "monitors.application.user is set but there is no command; the built-in check runs inside ringway (remove user, or add command)")
		case u == "root":
			v.errorf("monitors.application.user", "monitors.application.user is root; name an unprivileged account (nobody, or a user made for the check)")
		}
	}
	if v.positive("monitors.ping.interval", m.Ping.Interval) && v.positive("monitors.ping.timeout", m.Ping.Timeout) {
		v.between("monitors.ping.interval", m.Ping.Interval, MinMonitorInterval, MaxMonitorInterval, d.Ping.Interval)
		if m.Ping.Timeout > m.Ping.Interval {
			v.errorf("monitors.ping.timeout", "monitors.ping.timeout %v is longer than monitors.ping.interval %v; make it at most the interval", m.Ping.Timeout, m.Ping.Interval)
		} else {
			v.between("monitors.ping.timeout", m.Ping.Timeout, MinPingTimeout, m.Ping.Interval, d.Ping.Timeout)
		}
	}
	if len(m.Ping.Targets) > MaxPingTargets {
		v.errorf("monitors.ping.targets", "monitors.ping.targets lists %d targets; ping at most %d", len(m.Ping.Targets), MaxPingTargets)
	}
	if m.Ping.Enabled && len(m.Ping.Targets) == 0 && !v.broken("monitors.ping.targets") {
		v.errorf("monitors.ping", "the ping monitor is enabled but has no targets; add targets: [hosts or routers to ping], or set enabled: false")
	}
	seen := map[netip.Addr]int{}
	for i, a := range m.Ping.Targets {
		if j, dup := seen[a]; dup && a.IsValid() {
			v.errorf(fmt.Sprintf("monitors.ping.targets[%d]", i), "ping target %s is listed twice (also entry %d); keep one", a, j+1)
		}
		seen[a] = i
	}
}

func (v *validator) balancing() {
	b := v.c.Balancing
	if !(b.Threshold > 0) || math.IsInf(b.Threshold, 0) {
		v.errorf("balancing.threshold", "balancing.threshold is %v; write a positive fraction of the mean load, e.g. 0.25", b.Threshold)
	} else if b.Threshold > MaxThreshold {
		v.errorf("balancing.threshold", "balancing.threshold is %v; write a fraction of the mean load up to %v, e.g. 0.25", b.Threshold, MaxThreshold)
	}
	if b.MinRate < 0 {
		v.errorf("balancing.min_rate", "balancing.min_rate is %d; write a rate in bytes per second, 0 or more", b.MinRate)
	} else if b.MinRate > MaxMinRate {
		v.errorf("balancing.min_rate", "balancing.min_rate is %d; write a rate in bytes per second up to %d (default %d)", b.MinRate, int64(MaxMinRate), DefaultConfig().Balancing.MinRate)
	}
	if b.Cooldown < 0 {
		v.errorf("balancing.cooldown", "balancing.cooldown is %v; write 0 or a positive duration", b.Cooldown)
	} else {
		v.between("balancing.cooldown", b.Cooldown, 0, MaxCooldown, DefaultConfig().Balancing.Cooldown)
	}
}

func (v *validator) router() {
	r, d := v.c.Router, DefaultConfig().Router
	if r.GARP.Count < 1 {
		v.errorf("router.garp.count", "router.garp.count is %d; write 1 or more", r.GARP.Count)
	} else {
		v.intBetween("router.garp.count", r.GARP.Count, 1, MaxGARPCount, d.GARP.Count, "")
	}
	if v.positive("router.garp.interval", r.GARP.Interval) {
		v.between("router.garp.interval", r.GARP.Interval, MinGARPInterval, MaxGARPInterval, d.GARP.Interval)
	}
	switch {
	case r.GARP.Refresh < 0:
		v.errorf("router.garp.refresh", "router.garp.refresh is %v; write 0 (never) or a positive duration", r.GARP.Refresh)
	case r.GARP.Refresh > 0 && (r.GARP.Refresh < MinGARPRefresh || r.GARP.Refresh > MaxGARPRefresh):
		v.errorf("router.garp.refresh", "router.garp.refresh is %v; write 0 (never) or %v to %v (default %v)", r.GARP.Refresh, MinGARPRefresh, MaxGARPRefresh, d.GARP.Refresh)
	}
	if r.GARP.Rate < 1 {
		v.errorf("router.garp.rate", "router.garp.rate is %d; write 1 or more GARPs per second", r.GARP.Rate)
	} else {
		v.intBetween("router.garp.rate", r.GARP.Rate, 1, MaxGARPRate, d.GARP.Rate, " GARPs per second")
	}
	if v.positive("router.arp_cache.ttl", r.ARPCache.TTL) {
		v.between("router.arp_cache.ttl", r.ARPCache.TTL, MinARPCacheTTL, MaxARPCacheTTL, d.ARPCache.TTL)
	}
	if r.ARPCache.Queue < 0 {
		v.errorf("router.arp_cache.queue", "router.arp_cache.queue is %d; write 0 or more packets", r.ARPCache.Queue)
	} else {
		// 0 keeps the default (the router holds at least one packet).
		v.intBetween("router.arp_cache.queue", r.ARPCache.Queue, 0, MaxARPCacheQueue, d.ARPCache.Queue, " packets")
	}
}

func (v *validator) management() {
	m := v.c.Management
	if m.Listen != "" {
		host, port, err := net.SplitHostPort(m.Listen)
		n, perr := strconv.Atoi(port)
		switch {
		case err != nil:
			v.errorf("management.listen", "management.listen %q is not host:port; write e.g. 127.0.0.1:9440, or \"\" to disable", m.Listen)
		case perr != nil || n < 1 || n > 65535:
			v.errorf("management.listen", "management.listen %q: port %q is not a number from 1 to 65535", m.Listen, port)
		case host != "" && strings.Contains(host, "%"):
			v.errorf("management.listen", "management.listen %q: zones are not supported; write a plain address", m.Listen)
		}
		if m.TokenFile == "" {
			v.errorf("management.token_file", "management.token_file is empty; the API needs a token file (or set listen: \"\" to disable it)")
		}
	}
	if (m.TLSCert == "") != (m.TLSKey == "") {
		v.errorf("management", "management needs both tls_cert and tls_key, or neither")
	}
}
