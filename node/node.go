package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/forward"
	"github.com/ringway/ringway/forward/tunnelnet"
	"github.com/ringway/ringway/mgmt"
	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ring/ringnet"
	"github.com/ringway/ringway/ringstate"
	"github.com/ringway/ringway/router"
	"github.com/ringway/ringway/vipstate"
)

// Config configures a Node.
type Config struct {
	// File is the loaded, validated config file.
	File *config.Config
	// Version is reported in the status.
	Version string
	// Drain is how long a leaving node keeps forwarding after it has handed
	// its VIPs over, so packets that hosts still send to its MAC (until the
	// new owner's gratuitous ARP reaches them) are not lost. Default 1 s.
	Drain time.Duration
	// LeaveTimeout bounds the graceful leave; past it the node stops anyway
	// (the others then detect it as failed). Default 3 s.
	LeaveTimeout time.Duration
	// Logger receives the node's log. Default slog.Default().
	Logger *slog.Logger
	// OnReady, if set, is called once, from Run, when the node has applied
	// its first committed ring state: it answers for the VIPs the ring
	// gives it from then on (`ringway run` tells systemd READY=1).
	OnReady func()
	// OnStopping, if set, is called once, from Run, when the node starts
	// to stop: the graceful leave begins, a part failed, or Hurry
	// (`ringway run` tells systemd STOPPING=1).
	OnStopping func()
}

// Node is one running ringway gateway node.
type Node struct {
	cfg    Config
	file   *config.Config
	log    *slog.Logger
	self   ring.NodeID
	names  atomic.Pointer[[]string] // node ids by node-map position − 1; grows when a reload appends nodes
	holder ringstate.Config         // the Holder's config: the switches' defaults

	// The configuration it runs and its file as last read (reload.go).
	run     atomic.Pointer[runConfig]
	fileNow atomic.Pointer[fileState]
	reload  reloads

	// The parts Run drives (parts.go): New builds the real ones, tests
	// put fakes in their place.
	ring   Ring
	plane  Plane
	beside []part // run as long as the plane: the API, the monitors, the local reports, the filter's sweep

	// proposer takes operator operations and this node's health and load
	// into the ring core (the driver; a fake in tests).
	proposer proposer
	ops      opLog
	filter   *forward.Filter               // nil when filter.enabled is false (stateless)
	clock    func() int64                  // the router's clock (ns), which the filter's times are on
	tunnel   *tunnelnet.Driver             // nil unless symmetric routing is on (tunnel.go)
	dirKey   [forward.DirectoryKeyLen]byte // the flow directory's secret

	api  *mgmt.Server               // nil unless management.listen is set
	mons atomic.Pointer[monitorSet] // the monitors that run (monitors.go); a reload replaces it

	started time.Time
	state   atomic.Pointer[ring.State]

	closeOnce sync.Once
	hurry     chan struct{} // closed by Hurry
	// membershipChanges counts committed states with a new member list.
	membershipChanges atomic.Uint64
	replSeen          [2]uint64                            // replication refusals already logged (replicate.go)
	fillSeen          uint64                               // fills already logged (fill.go)
	authSince         atomic.Pointer[map[uint16]time.Time] // when each member became authoritative for rows here (fill.go)
	outSince          atomic.Int64                         // when this node left the ring (unix ns), 0 while in it (fill.go)
	hurryOnce         sync.Once
	readyOnce         sync.Once
	stoppingOnce      sync.Once
	events            membershipLog // the last membership changes with their causes (events.go)
	moveLog           moveLog       // the last VIP moves with their reasons (console.go)
	failover          failoverTimer // detection-to-GARP times (failover.go)
	linkLoad          atomic.Pointer[[]mgmt.LinkLoad]
}

// New checks everything that can be checked before the node touches the
// network (key and token files, interfaces, addresses) and builds the parts.
// It starts nothing; Close releases what New opened if Run never runs.
func New(cfg Config) (*Node, error) {
	n, err := newNode(cfg)
	if err != nil {
		return nil, err
	}
	f := n.file
	key, err := config.ReadKey(f.Cluster.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("cluster.key_file: %w", err)
	}
	for _, w := range config.KeyWarnings(f.Cluster.KeyFile) {
		n.log.Warn(w)
	}
	for _, s := range f.Subnets {
		if _, err := net.InterfaceByName(s.Interface); err != nil {
			return nil, fmt.Errorf("subnet %s: interface %s: %w (check subnets[].interface; `ip link` lists this host's interfaces)", s.Name, s.Interface, err)
		}
	}
	table, err := initialTable(f)
	if err != nil {
		return nil, err
	}

	hc := ringstate.Config{Initial: table, Balance: balanceConfig(f)}
	if symmetricOn(f) {
		// This node's word on the filled set (carriage kind 7), read at
		// its turns; the filter is built below, before the ring runs.
		hc.Filling = func() bool { return n.filter != nil && n.filter.Filling() }
	}
	n.holder = hc
	rc := ringConfig(f)
	rc.Holder = ringstate.New(hc)
	rc.Rand = cryptoRand
	rc.Clock = func() int64 { return time.Now().UnixMicro() }
	core, err := ring.NewNode(rc)
	if err != nil {
		return nil, fmt.Errorf("ring: %w", err)
	}
	driver, err := ringnet.New(driverConfig(f, key[:], n.log.With("part", "ring")), core)
	if err != nil {
		return nil, fmt.Errorf("ring: %w", err)
	}
	n.ring = ringDriver{driver, core}
	n.proposer = driver

	rcfg := routerConfig(f, n.log.With("part", "router"))
	rcfg.OnGARP = n.failover.announced
	if f.FilterEnabled() {
		if n.filter, err = forward.New(filterConfig(f)); err != nil {
			n.ring.Close()
			return nil, fmt.Errorf("filter: %w", err)
		}
		rcfg.Filter = n.filter
	}
	if symmetricOn(f) {
		if n.dirKey, err = forward.DirectoryKey(key[:]); err == nil {
			n.tunnel, err = n.newTunnel(f, key[:])
		}
		if err != nil {
			n.ring.Close()
			return nil, fmt.Errorf("forward: %w", err)
		}
		rcfg.Tunnel = n.tunnel
		rcfg.TunnelOverhead = forward.TunnelOverhead
		n.filter.StartFill() // a node that starts holds no replicas: it fills before it is authoritative
	}
	rt, err := router.New(rcfg)
	if err != nil {
		n.ring.Close()
		if n.tunnel != nil {
			n.tunnel.Close()
		}
		return nil, fmt.Errorf("router: %w", err)
	}
	n.plane = rt
	n.beside = append(n.beside, part{"local", runnerFunc(n.reportLocal)})
	if n.filter != nil {
		n.clock = rt.Now
		n.beside = append(n.beside, part{"filter", runnerFunc(n.sweepFlows)})
	}
	if n.tunnel != nil {
		n.beside = append(n.beside, part{"tunnel", n.tunnel})
	}

	if f.Management.Listen != "" {
		token, err := config.ReadToken(f.Management.TokenFile)
		if err != nil {
			n.Close()
			return nil, err
		}
		var readToken string
		if f.Management.ReadTokenFile != "" {
			if readToken, err = config.ReadTokenFor("management.read_token_file", f.Management.ReadTokenFile); err != nil {
				n.Close()
				return nil, err
			}
		}
		n.api, err = mgmt.NewServer(mgmt.Config{
			Listen: f.Management.Listen, Token: token, ReadToken: readToken,
			TLSCert: f.Management.TLSCert, TLSKey: f.Management.TLSKey,
			Logger:  n.log.With("part", "mgmt"),
			Metrics: n.metricsHandler(),
		}, n)
		if err != nil {
			n.Close()
			return nil, err
		}
		n.beside = append(n.beside, part{"mgmt", n.api})
	}
	// The monitors are built as a reload would turn them on, last: the
	// built-in check probes the router.
	mons, _, _, errs := n.nextMonitors(newMonitorSet(), f)
	n.mons.Store(&mons) // before Close can run: it closes the ping socket
	if len(errs) > 0 {
		n.Close()
		return nil, errors.Join(errs...)
	}
	n.beside = append(n.beside, part{"monitors", runnerFunc(n.runMonitors)})
	return n, nil
}

// newNode returns a Node for cfg with its defaults set and no parts: New
// builds the real parts into it, tests put fakes in their place (ring,
// plane, beside). It opens nothing.
func newNode(cfg Config) (*Node, error) {
	f := cfg.File
	if f == nil {
		return nil, errors.New("node: no config")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Drain == 0 {
		cfg.Drain = time.Second
	}
	if cfg.LeaveTimeout == 0 {
		cfg.LeaveTimeout = 3 * time.Second
	}
	n := &Node{cfg: cfg, file: f, log: cfg.Logger, self: ring.NodeID(f.LocalIndex()), hurry: make(chan struct{})}
	names := make([]string, len(f.Nodes))
	for i := range f.Nodes {
		names[i] = f.Nodes[i].ID
	}
	n.names.Store(&names)
	// No monitors, recorded as the file's settings: tests run a node with
	// fakes and no monitors, and a reload changes only what the file
	// changes. New builds the file's monitors in a set of its own.
	mons := newMonitorSet()
	mons.cfg = f.Monitors
	n.mons.Store(mons)
	if err := n.initConfig(f); err != nil {
		return nil, err
	}
	return n, nil
}

// driverConfig maps the config file onto the ring driver's.
func driverConfig(f *config.Config, key []byte, log *slog.Logger) ringnet.Config {
	dc := ringnet.DefaultConfig()
	dc.Self = ring.NodeID(f.LocalIndex())
	dc.Nodes = ringAddrs(f, uint16(f.Ring.Port))
	for i := range f.Nodes {
		dc.Names = append(dc.Names, f.Nodes[i].ID)
	}
	dc.Key = key
	dc.Tick = f.Ring.Tick
	// Wake the node for a committed state only when what it serves by
	// changed, not on every rotation's new table counter.
	dc.SameState = ringstate.SameService
	dc.Logger = log
	return dc
}

// routerConfig maps the config file onto the router's.
func routerConfig(f *config.Config, log *slog.Logger) router.Config {
	rc := router.DefaultConfig()
	for i, s := range f.Subnets {
		a := f.LocalAddresses()[i]
		rc.Links = append(rc.Links, router.Link{Name: s.Interface, Primary: netip.PrefixFrom(a, s.Prefix.Bits())})
	}
	for _, r := range f.Routes {
		rc.Routes = append(rc.Routes, router.Route{To: r.To, Via: r.Via})
	}
	for _, v := range f.AllVIPs() {
		rc.VIPs = append(rc.VIPs, v.Addr)
	}
	g := f.Router.GARP
	rc.GARPCount, rc.GARPInterval, rc.GARPRefresh = g.Count, g.Interval, g.Refresh
	if g.Rate > 0 {
		rc.GARPRate = float64(g.Rate)
	}
	if f.Router.ARPCache.TTL > 0 {
		rc.NeighReachable = f.Router.ARPCache.TTL
	}
	if f.Router.ARPCache.Queue > 0 {
		rc.NeighQueue = f.Router.ARPCache.Queue
	}
	rc.Logger = log
	return rc
}

func cryptoRand() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// healthy reports whether every monitor that runs passes.
func (n *Node) healthy() bool {
	return n.mons.Load().healthy()
}

// apply makes a committed ring state this node's behaviour: the VIPs the
// table gives this node are answered from now on, the others no longer.
func (n *Node) apply(st *ring.State) {
	prev := n.state.Swap(st)
	if e, ok := ringstate.CurrentEpoch(st.Carriages); ok {
		n.applyEpoch(e)
	}
	owned, err := ringstate.Owned(st, n.self)
	if err != nil {
		n.log.Error("committed state has an unreadable VIP table; keeping the previous ownership", "err", err)
		return
	}
	// The moves first: a VIP taken from a dropped node is timed from its
	// first announcement, which SetOwned may send at once.
	ms := n.moves(prev, st, time.Now())
	for _, m := range ms {
		if m.Reason == "failover" && m.To == n.name(n.self) {
			n.failover.tookOver(m.VIP, m.From)
		}
	}
	n.plane.SetOwned(owned)
	if len(ms) > 0 {
		n.moveLog.add(ms)
	}
	if n.cfg.OnReady != nil {
		n.readyOnce.Do(n.cfg.OnReady)
	}
	changed := prev == nil || !slices.Equal(prev.Members, st.Members)
	if changed {
		n.membershipChanges.Add(1)
		n.setDirectory(st)
		// Membership changed: announce again what this node owns, even
		// what it owned before. After a partition heals, hosts may still
		// hold the MAC of the node that took a VIP over while this one was
		// cut off; without a fresh gratuitous ARP they would keep using it
		// until their ARP entry expires.
		n.plane.Announce(owned)
		// The change itself, with its cause, is logged at info from the
		// ring's event (membershipEvent).
		n.log.Debug("membership committed", "members", n.nameList(st.Members), "ring", st.RingID, "alone", st.Alone, "no_quorum", st.NoQuorum, "owned", len(owned))
	}
	n.applyFill(st, changed)
}

func (n *Node) logEvent(ev ring.Event) {
	if (ev.Kind == ring.EventApplied || ev.Kind == ring.EventRefused) && ev.Proposal != 0 && ev.Proposal == n.reload.fileOp.Load() {
		n.log.Debug("file hash reported on the token", "refused", ev.Err)
		return
	}
	switch ev.Kind {
	case ring.EventApplied:
		n.log.Info("operation applied", "op", n.ops.done(ev.Proposal, ""), "id", ev.Proposal)
	case ring.EventRefused:
		why := ev.Err
		if why == "" {
			why = "refused"
		}
		op := n.ops.done(ev.Proposal, why)
		if op == "?" || strings.HasPrefix(op, "reload ") {
			// Reload waits for it ("?": the answer came before Reload
			// recorded the proposal).
			n.reload.refuse(ev.Proposal, ev.Err)
		}
		n.log.Warn("operation refused", "op", op, "id", ev.Proposal, "reason", ev.Err)
	default:
		n.log.Debug("ring event", "event", ev.String())
		n.membershipEvent(ev, time.Now())
	}
}

// Close stops everything New and Run opened. Safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		if n.ring != nil {
			n.ring.Close()
		}
		if n.plane != nil {
			n.plane.Close()
		}
		if n.tunnel != nil {
			n.tunnel.Close() // the sockets, when Run never ran
		}
		if n.api != nil {
			n.api.Close() // the listener, when Run never ran
		}
		if p := n.mons.Load().ping; p != nil {
			p.Close() // the raw socket, when Run never ran
		}
	})
	return nil
}

func (n *Node) name(id ring.NodeID) string {
	names := *n.names.Load()
	if id == 0 || int(id) > len(names) {
		return ""
	}
	return names[id-1]
}

func (n *Node) nameList(ids []ring.NodeID) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, n.name(id))
	}
	return out
}

// VIP queues an operator's VIP operation for this node's next turn with the
// token (mgmt.Backend).
func (n *Node) VIP(op mgmt.VIPOp) error {
	_, err := n.QueueVIP(op)
	return err
}

// QueueVIP is VIP, returning the operation's id (mgmt.OpQueuer).
func (n *Node) QueueVIP(op mgmt.VIPOp) (uint64, error) {
	table, err := n.serving()
	if err != nil {
		return 0, err
	}
	if _, found := table.Lookup(op.VIP); !found {
		return 0, fmt.Errorf("VIP %s is not in the table: %w", op.VIP, mgmt.ErrNotFound)
	}
	o, err := vipOp(op, n.run.Load().cfg.IndexOf(op.Node))
	if err != nil {
		return 0, err
	}
	_, data, err := ringstate.ProposeVIPOp(o)
	if err != nil {
		return 0, err
	}
	return n.propose(ringstate.ProposeVIP, data, fmt.Sprintf("vip %s %s %s", op.Op, op.VIP, op.Node))
}

// serving returns the committed VIP table when this node may take an
// operator's operation: a member of a ring with quorum that has a table.
func (n *Node) serving() (vipstate.Table, error) {
	st := n.state.Load()
	table, ok, _ := ringstateTable(st)
	if !ok {
		return table, errNoTable
	}
	if st.NoQuorum || !slices.Contains(st.Members, n.self) {
		return table, errNotServing
	}
	return table, nil
}

// Node queues an operator's node operation (close or open) for this node's
// next turn with the token (mgmt.Backend).
func (n *Node) Node(op mgmt.NodeOp) error {
	_, err := n.QueueNode(op)
	return err
}

// QueueNode is Node, returning the operation's id (mgmt.OpQueuer).
func (n *Node) QueueNode(op mgmt.NodeOp) (uint64, error) {
	if _, err := n.serving(); err != nil {
		return 0, err
	}
	id := n.run.Load().cfg.IndexOf(op.Node)
	if id == 0 {
		return 0, fmt.Errorf("node %q is not in the node map (%s): %w", op.Node, strings.Join(*n.names.Load(), ", "), mgmt.ErrNotFound)
	}
	_, data, err := ringstate.ProposeNodeOp(ringstate.NodeOp{Node: vipstate.Node(id), Close: op.Op == "close"})
	if err != nil {
		return 0, err
	}
	return n.propose(ringstate.ProposeNode, data, fmt.Sprintf("node %s %s", op.Op, op.Node))
}

// Switch queues an operator's switch (L.BAL or AUTO on or off) for this
// node's next turn with the token (mgmt.SwitchBackend).
func (n *Node) Switch(op mgmt.SwitchOp) (uint64, error) {
	if _, err := n.serving(); err != nil {
		return 0, err
	}
	w, err := ringstate.ParseSwitch(op.Switch)
	if err != nil {
		return 0, err
	}
	_, data, err := ringstate.ProposeSwitchOp(ringstate.SwitchOp{Switch: w, On: op.On})
	if err != nil {
		return 0, err
	}
	state := "off"
	if op.On {
		state = "on"
	}
	return n.propose(ringstate.ProposeSwitch, data, fmt.Sprintf("switch %s %s", op.Switch, state))
}

// proposeTimeout bounds the wait for the ring driver to take a proposal
// (it waits only for the core's lock).
const proposeTimeout = 2 * time.Second

// propose hands an operation to the ring core for this node's next turn
// and returns its id.
func (n *Node) propose(kind uint16, data []byte, desc string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), proposeTimeout)
	defer cancel()
	id, err := n.proposer.Propose(ctx, kind, data)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", desc, err)
	}
	n.ops.add(id, desc, time.Now())
	return id, nil
}

// vipOp turns an operator's VIP operation into ringstate's; to is the
// node-map position of op.Node (0 when unknown).
func vipOp(op mgmt.VIPOp, to int) (ringstate.VIPOp, error) {
	a, err := ringstate.ParseVIPAction(op.Op)
	if err != nil {
		return ringstate.VIPOp{}, err
	}
	o := ringstate.VIPOp{Action: a, VIP: op.VIP}
	if a == ringstate.VIPMove {
		if to == 0 {
			return o, fmt.Errorf("node %q is not in the node map: %w", op.Node, mgmt.ErrNotFound)
		}
		o.Node = vipstate.Node(to)
	}
	return o, nil
}

func ringstateTable(st *ring.State) (vipstate.Table, bool, error) {
	if st == nil {
		return vipstate.Table{}, false, nil
	}
	return ringstate.Table(st.Carriages)
}
