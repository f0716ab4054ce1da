package config

import (
	"crypto/sha256"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// What a reload may change (docs/operating.md, "Reload"). A running
// cluster applies the cluster-wide part of a config file (Shared) as one
// versioned change on the token, the config epoch; Diff says which keys of
// a new file differ from the running config and whether each may change
// without a restart.

// Scope says what applying a changed key takes.
type Scope uint8

const (
	// Runtime keys change through a reload: the VIP pools
	// (subnets[].vips), the VIP policies (vips), balancing, the
	// gratuitous ARP schedule and the ARP cache (router.garp,
	// router.arp_cache), the ring's timers (not its tick or port), the
	// filter's rules, default and local services, the monitors (on, off
	// and their settings, but for the check's user), and nodes appended
	// to the end of the node map.
	Runtime Scope = iota
	// RestartNode keys belong to this node alone (its id, its own entry
	// in the node map, its interfaces, its management listener, the
	// application check's user and the filter's switch, tables and
	// timers): restart this node to apply them.
	RestartNode
	// RestartCluster keys must be the same on every node and cannot change
	// while the ring runs (the cluster name and key, the node map but for
	// nodes appended at its end, quorum, the ring's tick and port, the
	// tunnel port): restart every node.
	RestartCluster
)

func (s Scope) String() string {
	switch s {
	case Runtime:
		return "runtime"
	case RestartNode:
		return "restart this node"
	case RestartCluster:
		return "restart every node"
	}
	return fmt.Sprintf("scope(%d)", uint8(s))
}

// Change is one key that differs between two configs.
type Change struct {
	Key   string // the key path as the file spells it, e.g. "subnets[0].vips"
	Scope Scope
	Why   string // for keys that cannot change at run time: what to do instead
}

func (c Change) String() string {
	if c.Scope == Runtime {
		return c.Key
	}
	return fmt.Sprintf("%s: %s", c.Key, c.Why)
}

// Diff lists the keys of next that differ from old, in file order. A
// reload may apply next only if every change has Scope Runtime
// (Refusals).
func Diff(old, next *Config) []Change {
	var cs []Change
	add := func(key string, s Scope, why string) { cs = append(cs, Change{Key: key, Scope: s, Why: why}) }
	restartNode := "cannot change at run time; restart this node to apply it"
	restartAll := "must be the same on every node and cannot change while the ring runs; change it in every node's file and restart every node"
	if old.Cluster.Name != next.Cluster.Name {
		add("cluster.name", RestartCluster, restartAll)
	}
	if old.Cluster.KeyFile != next.Cluster.KeyFile {
		add("cluster.key_file", RestartCluster, "the cluster key cannot change at run time; "+
			"install the new key on every node and restart every node")
	}
	if old.Node.ID != next.Node.ID {
		add("node.id", RestartNode, "this node's id cannot change at run time; restart this node to apply it")
	}
	self := old.LocalIndex()
	switch {
	case self > 0 && (self > len(next.Nodes) || !reflect.DeepEqual(old.Nodes[self-1], next.Nodes[self-1])):
		add(fmt.Sprintf("nodes[%d]", self-1), RestartNode, "this node's own entry (its id and primary addresses) cannot change at run time; restart this node to apply it")
	case len(next.Nodes) > len(old.Nodes) && reflect.DeepEqual(old.Nodes, next.Nodes[:len(old.Nodes)]):
		add("nodes", Runtime, "") // appended: the new nodes may join
	case !reflect.DeepEqual(old.Nodes, next.Nodes):
		add("nodes", RestartCluster, "the node map "+restartAll)
	}
	if len(old.Subnets) != len(next.Subnets) {
		add("subnets", RestartNode, "adding or removing subnets (interfaces) "+restartNode)
	} else {
		for i := range old.Subnets {
			o, n := old.Subnets[i], next.Subnets[i]
			if o.Name != n.Name || o.Interface != n.Interface || o.Prefix != n.Prefix {
				add(fmt.Sprintf("subnets[%d]", i), RestartNode, "a subnet's name, interface or prefix "+restartNode)
			}
			if !slices.Equal(o.VIPs, n.VIPs) {
				add(fmt.Sprintf("subnets[%d].vips", i), Runtime, "")
			}
		}
	}
	same := func(key string, a, b any, s Scope, why string) {
		if !reflect.DeepEqual(a, b) {
			add(key, s, why)
		}
	}
	same("routes", old.Routes, next.Routes, RestartNode, restartNode)
	same("vips", old.VIPs, next.VIPs, Runtime, "")
	same("quorum", old.Quorum, next.Quorum, RestartCluster, restartAll)
	// The ring's timers change at run time within config check's bounds;
	// its clock and port do not.
	same("ring.tick", old.Ring.Tick, next.Ring.Tick, RestartCluster, "the ring's clock "+restartAll)
	same("ring.port", old.Ring.Port, next.Ring.Port, RestartCluster, "the ring's port "+restartAll)
	same("ring.realtime_priority", old.Ring.RealtimePriority, next.Ring.RealtimePriority, RestartNode, "this node's scheduling "+restartNode)
	ot, nt := old.Ring, next.Ring
	ot.Tick, ot.Port, nt.Tick, nt.Port = 0, 0, 0, 0
	ot.RealtimePriority, nt.RealtimePriority = 0, 0
	same("ring", ot, nt, Runtime, "")
	// Monitors are turned on and off, and change their settings, at run
	// time; the application check's user does not (ringway keeps
	// CAP_SETUID and CAP_SETGID only when it starts with one).
	om, nm := old.Monitors, next.Monitors
	same("monitors.nic", om.NIC, nm.NIC, Runtime, "")
	if om.Application.User != nm.Application.User {
		add("monitors.application.user", RestartNode, "the check's user "+restartNode+" (ringway keeps CAP_SETUID and CAP_SETGID only when it starts with one)")
	} else {
		same("monitors.application", om.Application, nm.Application, Runtime, "")
	}
	same("monitors.ping", om.Ping, nm.Ping, Runtime, "")
	same("balancing", old.Balancing, next.Balancing, Runtime, "")
	same("router.garp", old.Router.GARP, next.Router.GARP, Runtime, "")
	same("router.arp_cache", old.Router.ARPCache, next.Router.ARPCache, Runtime, "")
	// The rules, the default and the local services change at run time;
	// the filter's switch, tables and timers do not.
	same("filter.default", old.Filter.Default, next.Filter.Default, Runtime, "")
	same("filter.rules", old.Filter.Rules, next.Filter.Rules, Runtime, "")
	same("filter.local", old.Filter.Local, next.Filter.Local, Runtime, "")
	of, nf := old.Filter, next.Filter
	of.Default, of.Rules, of.Local, nf.Default, nf.Rules, nf.Local = 0, nil, nil, 0, nil, nil
	same("filter", of, nf, RestartNode, "the filter's switch, table sizes, defer and timeouts "+restartNode)
	same("forward", old.Forward, next.Forward, RestartCluster, restartAll)
	same("management", old.Management, next.Management, RestartNode, restartNode)
	return cs
}

// Refusals returns the changes that keep a reload from applying: those
// whose Scope is not Runtime.
func Refusals(cs []Change) []Change {
	var out []Change
	for _, c := range cs {
		if c.Scope != Runtime {
			out = append(out, c)
		}
	}
	return out
}

// Keys joins the keys of cs for a log line.
func Keys(cs []Change) string {
	ks := make([]string, len(cs))
	for i, c := range cs {
		ks[i] = c.Key
	}
	return strings.Join(ks, ", ")
}

// sharedFile names the cluster-wide part in error messages.
const sharedFile = "config epoch"

// Shared renders the cluster-wide part of c: the whole file but for what
// belongs to one node (node.id, the paths of the key and token files, the
// management listener, ring.realtime_priority), which Shared replaces by
// fixed values. Two nodes
// whose files differ only in those keys get the same bytes; the config
// epoch carries them (ringstate.ConfigEpoch) and their SHA-256 is the
// file hash `ringway status` shows.
func (c *Config) Shared() ([]byte, error) {
	s := *c
	s.File, s.src = "", nil
	s.Node = Node{}
	if len(c.Nodes) > 0 {
		s.Node.ID = c.Nodes[0].ID // a valid id; the receiver puts its own
	}
	s.Cluster.KeyFile = "cluster.key"
	s.Management = Management{}
	s.Ring.RealtimePriority = DefaultRealtimePriority // the receiver keeps its own
	return s.Marshal()
}

// Hash is the SHA-256 of shared bytes (Shared).
func Hash(shared []byte) [32]byte { return sha256.Sum256(shared) }

// WithShared returns a copy of c whose runtime keys (subnets[].vips, vips,
// balancing, router.garp and arp_cache, ring timers, filter rules, default
// and local services, monitors, nodes appended to the map) are those of
// shared, the cluster-wide part of another file
// (Shared), validated as a whole. The other keys of shared must equal c's
// (a node never applies half an epoch): when they differ, WithShared
// returns the changes that keep it from applying.
func (c *Config) WithShared(shared []byte) (*Config, []Change, error) {
	e, err := Parse(sharedFile, shared)
	if err != nil {
		return nil, nil, err
	}
	// The keys that belong to this node are this node's.
	e.Node, e.Management, e.File, e.Cluster.KeyFile = c.Node, c.Management, c.File, c.Cluster.KeyFile
	e.Ring.RealtimePriority = c.Ring.RealtimePriority
	cs := Diff(c, e)
	if r := Refusals(cs); len(r) > 0 {
		return nil, r, nil
	}
	out := *c
	out.Subnets = slices.Clone(c.Subnets)
	for i := range out.Subnets {
		out.Subnets[i].VIPs = slices.Clone(e.Subnets[i].VIPs)
	}
	out.VIPs = slices.Clone(e.VIPs)
	out.Balancing = e.Balancing
	out.Router.GARP, out.Router.ARPCache = e.Router.GARP, e.Router.ARPCache
	out.Nodes = slices.Clone(e.Nodes) // appended nodes (Diff refused any other change)
	out.Ring = e.Ring                 // timers (Diff refused another tick or port)
	out.Filter.Default, out.Filter.Rules, out.Filter.Local = e.Filter.Default, slices.Clone(e.Filter.Rules), slices.Clone(e.Filter.Local)
	out.Monitors = e.Monitors
	out.src = nil // lines of c's file no longer match
	if err := out.Validate(); err != nil {
		return nil, nil, err
	}
	return &out, cs, nil
}
