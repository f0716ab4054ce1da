package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/mgmt"
	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ringstate"
)

// Reload (docs/operating.md, "Reload"): the node re-reads its file,
// validates it as `config check` does, refuses keys that cannot change at
// run time, and proposes the file's cluster-wide part (config.Shared) as
// a ringstate.ConfigChange. The holder that takes the proposal applies it
// to the token (a new ringstate.Epoch with the VIP table it implies);
// every node applies the epoch when it commits the token that carries it
// (applyEpoch), whatever its own file says; a node whose file differs
// says so in its log and status.

// runConfig is the configuration a node runs: its file's own keys with the
// runtime keys of the cluster's current epoch.
type runConfig struct {
	cfg    *config.Config
	epoch  uint64
	hash   [32]byte          // of cfg.Shared()
	groups map[uint16]string // VIP group numbers to names (groupNames)
	drop   []netip.Addr      // the VIPs whose flows the epoch dropped (--drop-flows)
}

// fileState is this node's file as it last read it.
type fileState struct {
	cfg  *config.Config
	hash [32]byte
}

// reloads tracks the outcome of this node's reload proposals.
type reloads struct {
	mu     sync.Mutex // serialises Reload
	last   atomicString
	fileOp atomic.Uint64 // the last file hash report's proposal id

	refusedMu sync.Mutex
	refused   map[uint64]string // proposal id → the holder's reason, until Reload reads it

	knownMu sync.Mutex
	known   []runConfig // the last configurations this node ran, newest last (remember)
}

// maxKnown is how many configurations a node remembers: a token
// regenerated from an older copy may bring back an epoch whose content
// has left the token, and the node can still run it.
const maxKnown = 8

// refuse records the holder's refusal of proposal id.
func (r *reloads) refuse(id uint64, why string) {
	r.refusedMu.Lock()
	defer r.refusedMu.Unlock()
	if r.refused == nil || len(r.refused) >= 64 { // answers nobody waits for any more
		r.refused = map[uint64]string{}
	}
	r.refused[id] = why
}

// refusal returns and forgets the refusal of proposal id, if any.
func (r *reloads) refusal(id uint64) (string, bool) {
	r.refusedMu.Lock()
	defer r.refusedMu.Unlock()
	why, ok := r.refused[id]
	delete(r.refused, id)
	return why, ok
}

func (r *reloads) remember(c runConfig) {
	r.knownMu.Lock()
	defer r.knownMu.Unlock()
	for _, k := range r.known {
		if k.hash == c.hash {
			return
		}
	}
	r.known = append(r.known, c)
	if len(r.known) > maxKnown {
		r.known = r.known[1:]
	}
}

func (r *reloads) lookup(h [32]byte) *config.Config {
	r.knownMu.Lock()
	defer r.knownMu.Unlock()
	for _, k := range r.known {
		if k.hash == h {
			return k.cfg
		}
	}
	return nil
}

type atomicString struct {
	mu sync.Mutex
	s  []string
}

func (a *atomicString) set(s []string) { a.mu.Lock(); a.s = s; a.mu.Unlock() }
func (a *atomicString) get() []string  { a.mu.Lock(); defer a.mu.Unlock(); return a.s }

// initConfig records the file the node starts with as epoch 0.
func (n *Node) initConfig(f *config.Config) error {
	shared, err := f.Shared()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	h := config.Hash(shared)
	n.run.Store(&runConfig{cfg: f, hash: h, groups: groupNames(f)})
	n.fileNow.Store(&fileState{cfg: f, hash: h})
	n.reload.remember(runConfig{cfg: f, hash: h})
	return nil
}

// Reload re-reads the node's config file and applies it cluster-wide
// (mgmt.Reloader). It waits until ctx ends for the ring's answer.
func (n *Node) Reload(ctx context.Context, o mgmt.ReloadOptions) mgmt.ReloadResult {
	n.reload.mu.Lock()
	defer n.reload.mu.Unlock()
	res := n.reloadFile(ctx, o)
	switch res.Outcome {
	case "refused":
		n.log.Error("reload refused; the node keeps running on its current configuration", "file", n.file.File, "problems", len(res.Errors))
		for _, e := range res.Errors {
			n.log.Error("reload: " + e)
		}
	case "pending":
		n.log.Warn("reload proposed but not applied yet (is this node a member of a ring with quorum?)", "hash", res.Hash)
	default:
		n.log.Info("reload: "+res.Outcome, "epoch", res.Epoch, "hash", res.Hash, "changes", res.Changes, "drop_flows", res.DropFlows)
	}
	for _, note := range res.Notes {
		n.log.Warn("reload: " + note)
	}
	return res
}

func (n *Node) reloadFile(ctx context.Context, o mgmt.ReloadOptions) mgmt.ReloadResult {
	refuse := func(errs ...string) mgmt.ReloadResult { return mgmt.ReloadResult{Outcome: "refused", Errors: errs} }
	f, err := config.Load(n.file.File)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			out := make([]string, len(errs))
			for i, e := range errs {
				out[i] = e.Error()
			}
			return refuse(out...)
		}
		return refuse(err.Error())
	}
	cur := n.run.Load()
	changes := config.Diff(cur.cfg, f)
	if r := config.Refusals(changes); len(r) > 0 {
		out := make([]string, len(r))
		for i, c := range r {
			out[i] = fmt.Sprintf("%s: %s", n.file.File, c)
		}
		return refuse(out...)
	}
	if len(f.Nodes) > len(cur.cfg.Nodes) && !symmetricOn(cur.cfg) && symmetricOn(f) {
		return refuse(fmt.Sprintf("%s: nodes: a second node with the stateful filter on needs the inter-node tunnel, which a node sets up at start only when its node map has more than one node; add the nodes to every node's file and restart this node", n.file.File))
	}
	shared, err := f.Shared()
	if err != nil {
		return refuse(err.Error())
	}
	h := config.Hash(shared)
	n.fileNow.Store(&fileState{cfg: f, hash: h})
	res := mgmt.ReloadResult{Hash: short(h), Changes: changeKeys(changes)}
	var drop []netip.Addr
	if o.DropFlows {
		drop = removedVIPs(cur.cfg, f)
		if len(drop) == 0 {
			res.Notes = append(res.Notes, "--drop-flows: this reload removes no VIP from the configuration the cluster runs, so no flow is dropped "+
				"(give --drop-flows with the first reload of the file that removes the VIPs, before other nodes get SIGHUP)")
		} else if n.filter == nil {
			res.Notes = append(res.Notes, "--drop-flows: this node tracks no flows (filter.enabled is false): "+
				"nothing to drop here; nodes with the stateful filter drop theirs")
		}
	}
	if h == cur.hash {
		n.noteFile()
		// A monitor change this node could not apply (a check's user
		// missing then) is tried again: the operator fixed the cause.
		n.applyMonitors(cur.cfg)
		res.Outcome, res.Epoch = "unchanged", cur.epoch
		return res
	}
	from, err := initialTable(cur.cfg)
	if err != nil {
		return refuse(err.Error())
	}
	desired, err := initialTable(f)
	if err != nil {
		return refuse(err.Error())
	}
	data, err := ringstate.ConfigChange{Base: cur.hash, Balance: balanceConfig(f), Content: shared, From: from, Desired: desired,
		DropVIPs: drop}.MarshalBinary()
	if err != nil {
		return refuse(err.Error())
	}
	pctx, cancel := context.WithTimeout(ctx, proposeTimeout)
	id, err := n.proposer.Propose(pctx, ringstate.ProposeConfig, data)
	cancel()
	if err != nil {
		return refuse("propose the change to the ring: " + err.Error())
	}
	n.ops.add(id, "reload "+short(h), time.Now())
	// The answer: the epoch applied here (its hash is the file's, and it
	// drops the flows asked for), or the holder's refusal (logEvent
	// records it).
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if r := n.run.Load(); r.hash == h && (len(drop) == 0 || slices.Equal(r.drop, drop)) {
			res.Outcome, res.Epoch = "applied", r.epoch
			for _, v := range r.drop {
				res.DropFlows = append(res.DropFlows, v.String())
			}
			return res
		}
		if why, ok := n.reload.refusal(id); ok {
			return refuse(why)
		}
		select {
		case <-ctx.Done():
			res.Outcome = "pending"
			return res
		case <-tick.C:
		}
	}
}

// applyEpoch makes a committed epoch this node's configuration. The
// holder that made it has already changed the VIP table on the same
// token; here the node takes the epoch's runtime keys (for its status and
// the next reload's base) and compares its own file with it.
func (n *Node) applyEpoch(e ringstate.Epoch) {
	cur := n.run.Load()
	if e.Epoch == 0 || (e.Epoch == cur.epoch && e.Hash == cur.hash) {
		return // epoch 0: the carriage holds only the file hashes
	}
	var next *config.Config
	switch file := n.fileNow.Load(); {
	case e.Hash == cur.hash:
		next = cur.cfg // the epoch is what this node already runs
	case n.reload.lookup(e.Hash) != nil:
		next = n.reload.lookup(e.Hash) // one it ran before (a token regenerated from an older copy)
	case e.Hash == file.hash && len(config.Refusals(config.Diff(cur.cfg, file.cfg))) == 0:
		next = file.cfg // this node read the same file
	case len(e.Content) > 0:
		cfg, changes, err := n.file.WithShared(e.Content)
		if err != nil || cfg == nil {
			n.log.Error("config epoch not applied here: it changes what this node cannot change at run time; restart this node with the cluster's file",
				"epoch", e.Epoch, "hash", short(e.Hash), "refused", config.Keys(changes), "err", err)
			n.run.Store(&runConfig{cfg: cur.cfg, epoch: e.Epoch, hash: cur.hash, groups: cur.groups})
			return
		}
		next = cfg
	default:
		n.log.Error("config epoch not applied here: its content has left the token (this node missed it); reload this node with the cluster's file",
			"epoch", e.Epoch, "hash", short(e.Hash))
		n.run.Store(&runConfig{cfg: cur.cfg, epoch: e.Epoch, hash: cur.hash, groups: cur.groups})
		return
	}
	if !n.addNodes(cur.cfg, next) {
		n.run.Store(&runConfig{cfg: cur.cfg, epoch: e.Epoch, hash: cur.hash, groups: cur.groups})
		return
	}
	// Stored first: the status shows the epoch with the table it came
	// with (n.state), not after the parts below took their time.
	run := &runConfig{cfg: next, epoch: e.Epoch, hash: e.Hash, groups: groupNames(next)}
	n.run.Store(run)
	n.reload.remember(runConfig{cfg: next, hash: e.Hash})
	n.applyRouter(cur.cfg, next)
	n.applyTimers(cur.cfg, next)
	n.applyFilter(cur.cfg, next)
	n.applyMonitors(next)
	if len(e.DropVIPs) > 0 && e.Epoch > cur.epoch {
		n.dropFlows(e.DropVIPs)
		// A reload with --drop-flows answers once the flows are gone.
		done := *run
		done.drop = e.DropVIPs
		n.run.Store(&done)
	}
	if e.Epoch < cur.epoch {
		n.log.Warn("the cluster's config epoch went back (the token was regenerated from an older copy); reload a node to apply the file again",
			"from", cur.epoch, "to", e.Epoch, "hash", short(e.Hash))
	}
	if e.Hash != cur.hash {
		n.log.Info("config epoch applied", "epoch", e.Epoch, "hash", short(e.Hash), "changes", changeKeys(config.Diff(cur.cfg, next)), "by", n.name(e.Proposer))
		n.readFile()
	}
	n.noteFile()
}

// addNodes gives the ring the nodes next appends to old's node map, so
// that they can join; it reports false when the epoch cannot be applied.
func (n *Node) addNodes(old, next *config.Config) bool {
	if len(next.Nodes) <= len(old.Nodes) {
		return true
	}
	if !symmetricOn(old) && symmetricOn(next) {
		n.log.Error("config epoch not applied here: it appends nodes to a one-node map with the stateful filter on, whose inter-node tunnel a node sets up at start; restart this node",
			"nodes", len(next.Nodes))
		return false
	}
	if n.tunnel != nil {
		// The tunnel first: the new nodes' datagrams are believed, and
		// they can be sent to, before the ring admits them.
		peers := map[uint16][]netip.AddrPort{}
		for i, as := range ringAddrs(next, uint16(next.Forward.Port)) {
			peers[uint16(i+1)] = as
		}
		n.tunnel.AddPeers(peers)
	}
	all := ringAddrs(next, uint16(next.Ring.Port))
	var ids []ring.NodeID
	for i := len(old.Nodes); i < len(next.Nodes); i++ {
		ids = append(ids, ring.NodeID(i+1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), proposeTimeout)
	defer cancel()
	if err := n.ring.AddNodes(ctx, ids, all[len(old.Nodes):]); err != nil {
		n.log.Error("config epoch not applied here: the ring did not take the new nodes", "err", err)
		return false
	}
	names := make([]string, len(next.Nodes))
	for i := range next.Nodes {
		names[i] = next.Nodes[i].ID
	}
	n.names.Store(&names)
	n.log.Info("nodes appended to the node map; they may join now", "nodes", names[len(old.Nodes):])
	return true
}

// applyTimers gives the ring core the new configuration's timers, when
// they changed (config check's bounds hold for them; the core checks them
// again).
func (n *Node) applyTimers(old, next *config.Config) {
	if old.Ring == next.Ring && len(old.Nodes) == len(next.Nodes) {
		return
	}
	rc := ringConfig(next)
	t := ring.Timers{HopInterval: rc.HopInterval, MinRotation: rc.MinRotation, AckTimeout: rc.AckTimeout,
		AckRetries: rc.AckRetries, TokenLoss: rc.TokenLoss, JoinTimeout: rc.JoinTimeout}
	ctx, cancel := context.WithTimeout(context.Background(), proposeTimeout)
	defer cancel()
	if err := n.ring.SetTimers(ctx, t); err != nil {
		n.log.Error("the new ring timers were not applied; restart this node", "err", err)
	}
}

// applyFilter gives the stateful filter the new rules, default and local
// services, when they changed: flows it already accepted go on, new ones
// meet the new rules; and the new VIPs, which no packet may come from
// (anti-spoofing).
func (n *Node) applyFilter(old, next *config.Config) {
	if n.filter == nil {
		return
	}
	fc := filterConfig(next)
	if !slices.Equal(filterConfig(old).VIPs, fc.VIPs) {
		n.filter.SetVIPs(fc.VIPs)
	}
	o, x := old.Filter, next.Filter
	if o.Default == x.Default && reflect.DeepEqual(o.Rules, x.Rules) && reflect.DeepEqual(o.Local, x.Local) {
		return
	}
	if err := n.filter.SetRules(fc.Default, fc.Rules, fc.Local); err != nil {
		n.log.Error("the new filter rules were not applied; the node keeps the old ones", "err", err)
		return
	}
	n.log.Info("filter rules applied", "rules", len(fc.Rules), "default", x.Default.String())
}

// planeSettings is a Plane whose settings change at run time
// (*router.Router): the VIPs (the TUN device's addresses and the hosts'
// attribution), the gratuitous ARP schedule and the ARP cache.
type planeSettings interface {
	SetVIPs(vips []netip.Addr) error
	SetGARP(count int, interval, refresh time.Duration, rate float64) error
	SetARPCache(reachable time.Duration, queue int) error
}

// applyRouter gives the data plane what of its settings the new
// configuration changed (the plane answers whatever the committed table
// gives this node).
func (n *Node) applyRouter(old, next *config.Config) {
	p, ok := n.plane.(planeSettings)
	if !ok {
		return
	}
	oc, rc := routerConfig(old, n.log), routerConfig(next, n.log)
	if !slices.Equal(oc.VIPs, rc.VIPs) {
		if err := p.SetVIPs(rc.VIPs); err != nil {
			n.log.Error("the VIPs on the local delivery (TUN) device do not match the configuration; local services may not reach new VIPs", "err", err)
		}
	}
	if old.Router.GARP != next.Router.GARP {
		if err := p.SetGARP(rc.GARPCount, rc.GARPInterval, rc.GARPRefresh, rc.GARPRate); err != nil {
			n.log.Error("the new router.garp settings were not applied", "err", err)
		}
	}
	if old.Router.ARPCache != next.Router.ARPCache {
		if err := p.SetARPCache(rc.NeighReachable, rc.NeighQueue); err != nil {
			n.log.Error("the new router.arp_cache settings were not applied", "err", err)
		} else {
			n.log.Info("router.arp_cache applied", "ttl", rc.NeighReachable, "queue", rc.NeighQueue)
		}
	}
}

// removedVIPs returns the VIPs of old that next no longer has, sorted.
func removedVIPs(old, next *config.Config) []netip.Addr {
	keep := map[netip.Addr]bool{}
	for _, v := range next.AllVIPs() {
		keep[v.Addr] = true
	}
	var out []netip.Addr
	for _, v := range old.AllVIPs() {
		if !keep[v.Addr] && !slices.Contains(out, v.Addr) {
			out = append(out, v.Addr)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// gatewayHosts is a Plane that knows which hosts use which VIP as their
// gateway (*router.Router).
type gatewayHosts interface {
	GatewayHosts(vips []netip.Addr) []netip.Addr
}

// dropFlows drops the stateful filter's flows through vips, removed by an
// epoch applied with --drop-flows: those with a removed VIP at either end,
// and those of the hosts that used one as their gateway (as this node's
// router learnt from their ARP requests). The handler's purge removes the
// replicas at the flows' authoritative node and standby too; every node
// purges what it knows.
func (n *Node) dropFlows(vips []netip.Addr) {
	if n.filter == nil {
		n.log.Info("config epoch drops the flows through removed VIPs; this node tracks none (filter.enabled is false)", "vips", vips)
		return
	}
	addrs := slices.Clone(vips)
	var hosts []netip.Addr
	if g, ok := n.plane.(gatewayHosts); ok {
		hosts = g.GatewayHosts(vips)
		addrs = append(addrs, hosts...)
	}
	dropped := n.filter.DropFlows(addrs, n.routerNow())
	n.log.Info("flows through removed VIPs dropped (--drop-flows)", "vips", vips, "hosts", hosts, "flows", dropped)
}

// readFile reads this node's file again after the cluster's configuration
// changed, so that its status and log say whether the file agrees. A file
// that does not load is logged and left as last read.
func (n *Node) readFile() {
	f, err := config.Load(n.file.File)
	if err != nil {
		n.log.Warn("cannot read this node's config file to compare it with the cluster's", "file", n.file.File, "err", err)
		return
	}
	shared, err := f.Shared()
	if err != nil {
		return
	}
	n.fileNow.Store(&fileState{cfg: f, hash: config.Hash(shared)})
}

// noteFile logs, once per difference, when this node's file disagrees
// with the configuration the cluster runs, and which keys differ.
func (n *Node) noteFile() {
	r, f := n.run.Load(), n.fileNow.Load()
	var differs []string
	if r.hash != f.hash {
		differs = changeKeys(config.Diff(r.cfg, f.cfg))
		if len(differs) == 0 {
			differs = []string{"(keys outside the comparison)"}
		}
	}
	prev := n.reload.last.get()
	n.reload.last.set(differs)
	if len(differs) > 0 && fmt.Sprint(prev) != fmt.Sprint(differs) {
		n.log.Warn("this node's config file differs from the cluster's configuration; update the file (or reload the node whose file is right)",
			"file", n.file.File, "file_hash", short(f.hash), "cluster_epoch", r.epoch, "cluster_hash", short(r.hash), "keys", differs)
	}
}

// configStatus reports the epoch and file hashes for the status.
func (n *Node) configStatus() *mgmt.ConfigStatus {
	r, f := n.run.Load(), n.fileNow.Load()
	if r == nil || f == nil {
		return nil
	}
	s := &mgmt.ConfigStatus{Epoch: r.epoch, Hash: short(r.hash), FileHash: short(f.hash), Differs: n.reload.last.get()}
	if st := n.state.Load(); st != nil {
		if e, ok := ringstate.CurrentEpoch(st.Carriages); ok && len(e.Files) > 0 {
			s.Files = map[string]string{}
			for _, fh := range e.Files {
				s.Files[n.name(fh.Node)] = hex.EncodeToString(fh.Hash[:])
			}
		}
	}
	return s
}

// reportFile puts this node's file hash on the token when the committed
// state lacks it or has another (at start, after a reload, after a token
// regenerated from an older copy), so that every node's status lists it.
func (n *Node) reportFile(ctx context.Context) {
	st, f := n.state.Load(), n.fileNow.Load()
	if st == nil || f == nil || st.NoQuorum || !slices.Contains(st.Members, n.self) {
		return
	}
	e, _ := ringstate.CurrentEpoch(st.Carriages)
	if h, ok := e.FileOf(n.self); ok && h == [ringstate.FileHashLen]byte(f.hash[:]) {
		return
	}
	kind, data := ringstate.ProposeFileHash(f.hash)
	pctx, cancel := context.WithTimeout(ctx, proposeTimeout)
	defer cancel()
	if id, err := n.proposer.Propose(pctx, kind, data); err == nil {
		n.reload.fileOp.Store(id) // not an operator's operation: logEvent keeps it out of the list
	}
}

func changeKeys(cs []config.Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Key
	}
	return out
}

// short is the first 6 bytes of a hash in hex, as operators see it.
func short(h [32]byte) string { return hex.EncodeToString(h[:6]) }
