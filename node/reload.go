package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/mgmt"
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
}

// fileState is this node's file as it last read it.
type fileState struct {
	cfg  *config.Config
	hash [32]byte
}

// reloads tracks the outcome of this node's reload proposals.
type reloads struct {
	mu      sync.Mutex // serialises Reload
	refused sync.Map   // proposal id → reason (string)
	last    atomicString
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
	return nil
}

// Reload re-reads the node's config file and applies it cluster-wide
// (mgmt.Reloader). It waits until ctx ends for the ring's answer.
func (n *Node) Reload(ctx context.Context) mgmt.ReloadResult {
	n.reload.mu.Lock()
	defer n.reload.mu.Unlock()
	res := n.reloadFile(ctx)
	switch res.Outcome {
	case "refused":
		n.log.Error("reload refused; the node keeps running on its current configuration", "file", n.file.File, "problems", len(res.Errors))
		for _, e := range res.Errors {
			n.log.Error("reload: " + e)
		}
	case "pending":
		n.log.Warn("reload proposed but not applied yet (is this node a member of a ring with quorum?)", "hash", res.Hash)
	default:
		n.log.Info("reload: "+res.Outcome, "epoch", res.Epoch, "hash", res.Hash, "changes", res.Changes)
	}
	return res
}

func (n *Node) reloadFile(ctx context.Context) mgmt.ReloadResult {
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
	shared, err := f.Shared()
	if err != nil {
		return refuse(err.Error())
	}
	h := config.Hash(shared)
	n.fileNow.Store(&fileState{cfg: f, hash: h})
	res := mgmt.ReloadResult{Hash: short(h), Changes: changeKeys(changes)}
	if h == cur.hash {
		n.noteFile()
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
	data, err := ringstate.ConfigChange{Base: cur.hash, Balance: balanceConfig(f), Content: shared, From: from, Desired: desired}.MarshalBinary()
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
	// The answer: the epoch applied here (its hash is the file's), or the
	// holder's refusal (logEvent records it).
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if r := n.run.Load(); r.hash == h {
			res.Outcome, res.Epoch = "applied", r.epoch
			return res
		}
		if why, ok := n.reload.refused.LoadAndDelete(id); ok {
			return refuse(why.(string))
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
	if e.Epoch == cur.epoch && e.Hash == cur.hash {
		return
	}
	var next *config.Config
	switch file := n.fileNow.Load(); {
	case e.Hash == cur.hash:
		next = cur.cfg // the epoch is what this node already runs
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
	n.run.Store(&runConfig{cfg: next, epoch: e.Epoch, hash: e.Hash, groups: groupNames(next)})
	if e.Hash != cur.hash {
		n.log.Info("config epoch applied", "epoch", e.Epoch, "hash", short(e.Hash), "changes", changeKeys(config.Diff(cur.cfg, next)), "by", n.name(e.Proposer))
		n.readFile()
	}
	n.noteFile()
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
	return &mgmt.ConfigStatus{Epoch: r.epoch, Hash: short(r.hash), FileHash: short(f.hash), Differs: n.reload.last.get()}
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
