//go:build linux

package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/lab/workload"
	"github.com/ringway/ringway/mgmt"
)

// The chaos suite (docs/chaos.md): a nemesis injects faults into a running
// cluster of full nodes in the lab, one at a time, and heals them; a checker
// watches the ARP claims on the client's and the server's NIC for the whole
// run, and after every heal the nemesis times the return to one ring.
//
// Environment:
//
//	RINGWAY_CHAOS_DURATION  total fault time over both quorum modes (default 60s; make soak: 10m)
//	RINGWAY_CHAOS_SEED      the seed (default: the clock; always logged)
//	RINGWAY_CHAOS_ORDER     random (default: a shuffled deck of every fault, reshuffled when used up) or round-robin
//	RINGWAY_CHAOS_QUORUM    availability, majority, or both (default)
//	RINGWAY_CHAOS_NODES     nodes in the lab (default 4: halves of 2, a majority of 3)
//	RINGWAY_CHAOS_LOGS      a directory that receives every node's log
//	RINGWAY_CHAOS_FAULTS    only these faults, comma-separated names (default: every fault)

const (
	// chaosWindow is the fail-over window: after every action of the
	// nemesis (inject, heal, each kill, restart, stop or resume) the ARP
	// invariant is not checked for this long. A crash is repaired in
	// ≤ 100 ms at small N (bench-failover p99 ≈ 65 ms); 1 s leaves room for
	// the hosts' ARP caches (the observer probes every chaosProbe), for a
	// node that wakes from SIGSTOP and answers the probes queued in its
	// socket before it learns it was dropped, and for this 2-core machine
	// shared with other test runs. It is also the heal-to-one-ring
	// target: after a heal the window lasts at least until one ring is seen
	// plus chaosSettle, so two rings answering side by side during a slow
	// merge are charged to the ring time (reported), not counted twice.
	chaosWindow = time.Second
	chaosSettle = 250 * time.Millisecond
	// chaosProbe is how often the observers ask for every VIP; chaosSlot the
	// unit of the check (10 probes per slot).
	chaosProbe = 50 * time.Millisecond
	chaosSlot  = 500 * time.Millisecond
	// chaosQuiet is the steady state kept between two faults (checked
	// once the heal's window has passed).
	chaosQuiet = 2 * time.Second
	// ringTarget is the heal-to-one-ring target; ringBound the
	// generous bound the test fails on (ring figures beyond the target are
	// reported in the table, marked).
	ringTarget = time.Second
	ringBound  = 10 * time.Second
)

// fault is one kind of trouble the nemesis can cause.
type fault struct {
	name string
	// est is the fault's usual length with its heal and the quiet after
	// it, so the run stops starting faults that cannot finish in time.
	est time.Duration
	// inject causes the fault and returns what the hosts should see while
	// it lasts, and how long to hold it (0: the nemesis picks 2-4 s, so
	// that 1-3 s of every fault lie outside its fail-over window).
	inject func(n *nemesis) (expectation, time.Duration, error)
	// churn, if set, runs instead of a plain hold until the deadline
	// (storms).
	churn func(n *nemesis, until time.Time) error
	// heal undoes the fault; nil when inject left nothing to undo.
	heal func(n *nemesis) error
}

// nemesis drives one cluster through faults and records what it did.
type nemesis struct {
	t      *testing.T
	c      *cluster
	rng    *rand.Rand
	quorum config.Quorum
	nodes  int
	tl     *timeline
	down   map[int]bool // killed and not restarted
	seed   uint64
	start  time.Time // the observed run begins (the ring formed before)
	// events are the membership changes the nodes reported, by node,
	// time, kind and cause (collected after every fault and at the end).
	events map[string]mgmt.MembershipEvent
	stats  map[string]*faultStats
	// state of the fault in force, for its heal
	victims []int
	sides   []string
}

// faultStats is one row of the final table.
type faultStats struct {
	name    string
	count   int
	ring    []time.Duration // heal -> one ring with every node
	changes []int           // membership changes the busiest node logged per fault
}

func (n *nemesis) logf(format string, args ...any) {
	n.t.Helper()
	n.t.Logf("%s nemesis: %s", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// majority is the smallest majority of the node map.
func (n *nemesis) majority() int { return n.nodes/2 + 1 }

// served is what hosts beside a ring of k reachable nodes should see.
func (n *nemesis) served(k int) expectation {
	if n.quorum == config.QuorumMajority && k < n.majority() {
		return expectSilent
	}
	return expectServe
}

// act records an action: a fail-over window opens.
func (n *nemesis) act(what string) {
	now := time.Now()
	n.tl.window(now, now.Add(chaosWindow))
	n.logf("%s", what)
}

func (n *nemesis) pick() int { return 1 + n.rng.IntN(n.nodes) }

func (n *nemesis) perm() []int {
	p := n.rng.Perm(n.nodes)
	for k := range p {
		p[k]++
	}
	return p
}

func (n *nemesis) kill(i int) error {
	n.act(fmt.Sprintf("kill -9 n%d", i))
	if _, err := n.c.lab.Signal(n.c.lab.Node(i), syscall.SIGKILL); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.c.lab.WaitGone(ctx, n.c.lab.Node(i)); err != nil {
		return err
	}
	n.down[i] = true
	return nil
}

func (n *nemesis) restart(i int) error {
	n.act(fmt.Sprintf("restart n%d", i))
	delete(n.down, i)
	return startChaosNode(n.c, i)
}

func startChaosNode(c *cluster, i int) error {
	// info, not debug: debug logs every hop and slows the ring on a busy
	// host; membership changes and their causes are logged at info.
	return c.lab.StartNode(c.bin, i, "--log-level", "info")
}

func (n *nemesis) impair(what string, i int, sides []string, toNode, fromNode *lab.Impairment) error {
	n.act(fmt.Sprintf("%s on n%d %v", what, i, sides))
	n.victims, n.sides = []int{i}, sides
	for _, s := range sides {
		if err := n.c.lab.Impair(i, s, toNode, fromNode, n.rng.Uint64()); err != nil {
			return err
		}
	}
	return nil
}

func (n *nemesis) unimpair() error {
	for _, i := range n.victims {
		for _, s := range n.sides {
			if err := n.c.lab.Unimpair(i, s); err != nil {
				return err
			}
		}
	}
	return nil
}

func (n *nemesis) partition(what string, group0 int) (expectation, time.Duration, error) {
	p := n.perm()
	groups := [][]int{p[:group0], p[group0:]}
	n.act(fmt.Sprintf("partition %s: %v (with the client and server) | %v", what, groups[0], groups[1]))
	return n.served(group0), 0, n.c.lab.Partition(groups...)
}

func (n *nemesis) netem(what string, m lab.Impairment) (expectation, time.Duration, error) {
	side := []string{"ext", "int"}[n.rng.IntN(2)]
	return expectServe, 0, n.impair(what+" ("+m.String()+", both directions)", n.pick(), []string{side}, &m, &m)
}

// chaosFaults is the nemesis's list.
func chaosFaults(nodes int) []fault {
	unpartition := func(n *nemesis) error { n.act("heal partition"); return n.c.lab.Unpartition() }
	unimpair := func(n *nemesis) error { n.act("heal " + n.sides[0]); return n.unimpair() }
	return []fault{
		{name: "partition-halves", est: 7 * time.Second, heal: unpartition,
			inject: func(n *nemesis) (expectation, time.Duration, error) { return n.partition("into halves", n.nodes/2) }},
		{name: "partition-majority", est: 7 * time.Second, heal: unpartition,
			// the client and the server with the majority
			inject: func(n *nemesis) (expectation, time.Duration, error) {
				return n.partition("majority|minority", n.majority())
			}},
		{name: "partition-minority", est: 7 * time.Second, heal: unpartition,
			// the client and the server with the minority
			inject: func(n *nemesis) (expectation, time.Duration, error) {
				return n.partition("minority|majority", n.nodes-n.majority())
			}},
		{name: "one-way-deaf", est: 7 * time.Second, heal: unimpair,
			// the node hears nothing; what it sends arrives
			inject: func(n *nemesis) (expectation, time.Duration, error) {
				e := expectServe
				if n.quorum == config.QuorumAvailability {
					e = expectSome // alone, it claims every VIP: its GARP reaches the hosts
				}
				return e, 0, n.impair("one-way cut (hears nothing)", n.pick(), []string{"ext", "int"}, &lab.Impairment{Loss: 1}, nil)
			}},
		{name: "one-way-mute", est: 7 * time.Second, heal: unimpair,
			// the node hears everything; nothing it sends arrives
			inject: func(n *nemesis) (expectation, time.Duration, error) {
				return expectServe, 0, n.impair("one-way cut (sends nothing)", n.pick(), []string{"ext", "int"}, nil, &lab.Impairment{Loss: 1})
			}},
		{name: "loss", est: 7 * time.Second, heal: unimpair,
			inject: func(n *nemesis) (expectation, time.Duration, error) {
				return n.netem("loss", lab.Impairment{Loss: 0.05})
			}},
		{name: "delay", est: 7 * time.Second, heal: unimpair,
			inject: func(n *nemesis) (expectation, time.Duration, error) {
				return n.netem("delay", lab.Impairment{Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond})
			}},
		{name: "duplicate", est: 7 * time.Second, heal: unimpair,
			inject: func(n *nemesis) (expectation, time.Duration, error) {
				return n.netem("duplication", lab.Impairment{Duplicate: 0.2})
			}},
		{name: "reorder", est: 7 * time.Second, heal: unimpair,
			inject: func(n *nemesis) (expectation, time.Duration, error) {
				return n.netem("reordering", lab.Impairment{Delay: 5 * time.Millisecond, Reorder: 0.3})
			}},
		{name: "pause", est: 7 * time.Second,
			inject: func(n *nemesis) (expectation, time.Duration, error) {
				i := n.pick()
				hold := 200*time.Millisecond + time.Duration(n.rng.Int64N(int64(4800*time.Millisecond)))
				n.victims = []int{i}
				n.act(fmt.Sprintf("SIGSTOP n%d for %v", i, hold.Round(time.Millisecond)))
				_, err := n.c.lab.Signal(n.c.lab.Node(i), syscall.SIGSTOP)
				return expectServe, hold, err
			},
			heal: func(n *nemesis) error {
				n.act(fmt.Sprintf("SIGCONT n%d", n.victims[0]))
				_, err := n.c.lab.Signal(n.c.lab.Node(n.victims[0]), syscall.SIGCONT)
				return err
			}},
		{name: "kill-storm", est: 7 * time.Second,
			inject: func(n *nemesis) (expectation, time.Duration, error) {
				return expectServe, 2*time.Second + time.Duration(n.rng.Int64N(int64(time.Second))), nil
			},
			// kill -9 and restart nodes every 150-400 ms, never more at
			// once than leaves a quorum (majority) or half the nodes
			// (availability), so the hosts stay served.
			churn: func(n *nemesis, until time.Time) error {
				maxDown := n.nodes - n.majority()
				if n.quorum == config.QuorumAvailability {
					maxDown = max(1, n.nodes/2)
				}
				for time.Now().Before(until) {
					var up, down []int
					for i := 1; i <= n.nodes; i++ {
						if n.down[i] {
							down = append(down, i)
						} else {
							up = append(up, i)
						}
					}
					var err error
					if len(down) < maxDown && (len(down) == 0 || n.rng.IntN(2) == 0) {
						err = n.kill(up[n.rng.IntN(len(up))])
					} else {
						err = n.restart(down[n.rng.IntN(len(down))])
					}
					if err != nil {
						return err
					}
					time.Sleep(150*time.Millisecond + time.Duration(n.rng.Int64N(int64(250*time.Millisecond))))
				}
				return nil
			},
			heal: func(n *nemesis) error {
				for i := 1; i <= n.nodes; i++ {
					if n.down[i] {
						if err := n.restart(i); err != nil {
							return err
						}
					}
				}
				return nil
			}},
		{name: "rolling-restart", est: time.Duration(nodes) * 4 * time.Second,
			// every node in turn: SIGTERM (graceful leave), start again,
			// wait for one ring with every node; each restart's time to
			// one ring is a ring figure of this row.
			inject: func(n *nemesis) (expectation, time.Duration, error) {
				for i := 1; i <= n.nodes; i++ {
					n.act(fmt.Sprintf("rolling restart: SIGTERM n%d", i))
					if err := n.c.lab.StopNode(i, syscall.SIGTERM, 10*time.Second); err != nil {
						return expectServe, 0, err
					}
					if err := n.restart(i); err != nil {
						return expectServe, 0, err
					}
					if i < n.nodes {
						if err := n.oneRing("rolling-restart", time.Now()); err != nil {
							return expectServe, 0, err
						}
					}
				}
				return expectServe, time.Millisecond, nil
			}},
	}
}

// run injects f, holds it, heals it and waits for one ring with every node.
func (n *nemesis) run(f fault) error {
	st := n.stats[f.name]
	if st == nil {
		st = &faultStats{name: f.name}
		n.stats[f.name] = st
	}
	st.count++
	t0 := time.Now()
	n.victims, n.sides = nil, nil
	expect, hold, err := f.inject(n)
	if err != nil {
		return fmt.Errorf("%s: inject: %w", f.name, err)
	}
	n.tl.phase(t0, expect, f.name)
	if hold == 0 {
		hold = 2*time.Second + time.Duration(n.rng.Int64N(int64(2*time.Second)))
	}
	until := time.Now().Add(hold)
	if f.churn != nil {
		if err := f.churn(n, until); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	} else {
		time.Sleep(time.Until(until))
	}
	healed := time.Now()
	if f.heal != nil {
		if err := f.heal(n); err != nil {
			return fmt.Errorf("%s: heal: %w", f.name, err)
		}
	}
	n.tl.phase(healed, expectServe, "")
	if err := n.oneRing(f.name, healed); err != nil {
		return err
	}
	k, causes := n.changesSince(t0)
	st.changes = append(st.changes, k)
	if k > 0 {
		n.logf("%d membership changes at the busiest node: %s", k, strings.Join(causes, "; "))
	}
	time.Sleep(chaosQuiet)
	return nil
}

// oneRing waits until every node is a member of one ring with all nodes and
// they agree on the VIP table, records the time since from under name, and
// extends the fail-over window to the ring plus chaosSettle.
func (n *nemesis) oneRing(name string, from time.Time) error {
	all := make([]int, n.nodes)
	want := make([]string, n.nodes)
	for k := range all {
		all[k] = k + 1
		want[k] = fmt.Sprintf("n%d", k+1)
	}
	var last string
	for {
		sts, problem := n.c.statuses(all)
		if problem == "" {
			problem = checkAgreement(sts, want)
		}
		now := time.Now()
		if problem == "" {
			d := now.Sub(from)
			n.stats[name].ring = append(n.stats[name].ring, d)
			n.tl.window(from, now.Add(chaosSettle))
			mark := ""
			if d > ringTarget {
				mark = fmt.Sprintf(" (over the %v target)", ringTarget)
			}
			n.logf("one ring of %d %v after %v%s", n.nodes, sts[0].RingID, d.Round(time.Millisecond), mark)
			return nil
		}
		last = problem
		if now.Sub(from) > ringBound {
			return fmt.Errorf("%s: no single ring of every node %v after the heal: %s", name, ringBound, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// changesSince is the largest number of membership changes one node logged
// since t0 (statuses keep the last 32), with the first few of their causes.
func (n *nemesis) changesSince(t0 time.Time) (int, []string) {
	most := 0
	var causes []string
	for i := 1; i <= n.nodes; i++ {
		st, err := n.c.status(i)
		if err != nil {
			continue
		}
		var cs []string
		for _, e := range st.Events {
			if e.Time.After(t0) {
				cs = append(cs, fmt.Sprintf("%s %s: %s", e.Time.Format("15:04:05.000"), e.Kind, e.Cause))
			}
		}
		if len(cs) > most {
			most, causes = len(cs), cs
		}
	}
	if len(causes) > 6 {
		causes = append(causes[:6], "...")
	}
	return most, causes
}

func chaosEnv(t *testing.T) (total time.Duration, seed uint64, order string, modes []config.Quorum, nodes int) {
	total = 60 * time.Second
	if v := os.Getenv("RINGWAY_CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("RINGWAY_CHAOS_DURATION=%q: want a duration such as 10m", v)
		}
		total = d
	}
	seed = uint64(time.Now().UnixNano())
	if v := os.Getenv("RINGWAY_CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("RINGWAY_CHAOS_SEED=%q: want an unsigned integer", v)
		}
		seed = s
	}
	order = "random"
	if v := os.Getenv("RINGWAY_CHAOS_ORDER"); v != "" {
		if v != "random" && v != "round-robin" {
			t.Fatalf("RINGWAY_CHAOS_ORDER=%q: want random or round-robin", v)
		}
		order = v
	}
	modes = []config.Quorum{config.QuorumAvailability, config.QuorumMajority}
	switch v := os.Getenv("RINGWAY_CHAOS_QUORUM"); v {
	case "", "both":
	case "availability":
		modes = modes[:1]
	case "majority":
		modes = modes[1:]
	default:
		t.Fatalf("RINGWAY_CHAOS_QUORUM=%q: want availability, majority or both", v)
	}
	nodes = 4
	if v := os.Getenv("RINGWAY_CHAOS_NODES"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 3 || k > 16 {
			t.Fatalf("RINGWAY_CHAOS_NODES=%q: want 3..16", v)
		}
		nodes = k
	}
	return
}

// TestChaos runs the nemesis against a cluster with quorum availability,
// then against one with quorum majority, for RINGWAY_CHAOS_DURATION in all.
func TestChaos(t *testing.T) {
	total, seed, order, modes, nodes := chaosEnv(t)
	t.Logf("chaos: seed %d (replay: RINGWAY_CHAOS_SEED=%d), %v, order %s, %d nodes", seed, seed, total, order, nodes)
	for k, q := range modes {
		t.Run(q.String(), func(t *testing.T) {
			runChaos(t, q, nodes, total/time.Duration(len(modes)), seed+uint64(k), order)
		})
	}
}

func runChaos(t *testing.T, q config.Quorum, nodes int, dur time.Duration, seed uint64, order string) {
	c := newCluster(t, nodes, func(_ int, cfg *config.Config) { cfg.Quorum = q })
	if dir := os.Getenv("RINGWAY_CHAOS_LOGS"); dir != "" {
		t.Cleanup(func() { copyChaosLogs(t, c, filepath.Join(dir, q.String())) })
	}
	for i := 1; i <= nodes; i++ {
		if err := startChaosNode(c, i); err != nil {
			t.Fatal(err)
		}
	}
	all := make([]int, nodes)
	for k := range all {
		all[k] = k + 1
	}
	// Start from a settled cluster: one ring whose VIP owners stay put for
	// a second (right after forming, preferred VIPs may still move).
	st := c.waitConverged(all, 20*time.Second)
	for range 20 {
		time.Sleep(time.Second)
		again := c.waitConverged(all, 20*time.Second)
		if vipOwners(again) == vipOwners(st) {
			break
		}
		st = again
	}
	var vips [2][]netip.Addr // client side, server side
	for _, v := range st.VIPs {
		if v.Closed {
			continue
		}
		if lab.ExtPrefix.Contains(v.VIP) {
			vips[0] = append(vips[0], v.VIP)
		} else if lab.IntPrefix.Contains(v.VIP) {
			vips[1] = append(vips[1], v.VIP)
		}
	}
	names := [2]map[string]string{{}, {}}
	for i := 1; i <= nodes; i++ {
		for k, dev := range []string{lab.ExtIf, lab.IntIf} {
			hw, err := c.lab.HardwareAddr(c.lab.Node(i), dev)
			if err != nil {
				t.Fatal(err)
			}
			names[k][hw.String()] = fmt.Sprintf("n%d", i)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var obs [2]*workload.ARPObserver
	for k, host := range []string{c.lab.Client(), c.lab.Server()} {
		o, err := workload.StartARP(ctx, c.lab, host, workload.ARPConfig{Probe: vips[k], ProbeInterval: chaosProbe})
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		obs[k] = o
	}

	n := &nemesis{t: t, c: c, rng: rand.New(rand.NewPCG(seed, 0x6368616f73)), quorum: q, nodes: nodes,
		tl: &timeline{}, down: map[int]bool{}, seed: seed, stats: map[string]*faultStats{},
		events: map[string]mgmt.MembershipEvent{}}
	faults := chaosFaults(nodes)
	if v := os.Getenv("RINGWAY_CHAOS_FAULTS"); v != "" {
		want := strings.Split(v, ",")
		faults = slices.DeleteFunc(faults, func(f fault) bool { return !slices.Contains(want, f.name) })
		if len(faults) == 0 {
			t.Fatalf("RINGWAY_CHAOS_FAULTS=%q names no fault (%s)", v, strings.Join(faultNames(chaosFaults(nodes)), ", "))
		}
	}
	start := time.Now()
	n.start = start
	n.tl.phase(start, expectServe, "")
	n.tl.window(start, start.Add(chaosSettle)) // the observers' first probes

	time.Sleep(chaosQuiet)
	var deck []fault
	next := 0
	var runErr error
	for {
		if len(deck) == 0 {
			deck = slices.Clone(faults)
			if order == "random" {
				n.rng.Shuffle(len(deck), func(a, b int) { deck[a], deck[b] = deck[b], deck[a] })
			}
		}
		// the next fault that fits in the time left
		left := dur - time.Since(start)
		k := slices.IndexFunc(deck, func(f fault) bool { return f.est <= left })
		if k < 0 {
			break
		}
		f := deck[k]
		deck = slices.Delete(deck, k, k+1)
		next++
		n.logf("fault %d: %s", next, f.name)
		if runErr = n.run(f); runErr != nil {
			break
		}
	}
	end := time.Now()
	if runErr != nil {
		t.Errorf("seed %d: %v", seed, runErr)
	}
	// Membership changes the nemesis did not cause (a live node dropped on
	// a quiet ring: a false removal) are fail-overs too: the dropped node
	// serves its VIPs until it notices, while their new owners answer.
	// They get a fail-over window and are reported, not failed on (issue
	// 13's adaptive timeouts are to remove them).
	n.logEvents()
	unprovoked := n.unprovoked()
	for _, e := range unprovoked {
		n.tl.window(e.Time.Add(-100*time.Millisecond), e.Time.Add(chaosWindow))
	}

	checked := 0
	var vs []violation
	for k, side := range []string{"client", "server"} {
		m, v := checkARP(side, obs[k].Events(), vips[k], n.tl, start, end, chaosSlot, names[k])
		checked += m
		vs = append(vs, v...)
	}
	printChaosTable(t, q, n, end.Sub(start), checked, unprovoked)
	if len(vs) > 0 {
		sort.Slice(vs, func(a, b int) bool { return vs[a].from.Before(vs[b].from) })
		lines := violationLines(vs)
		if len(lines) > 30 {
			lines = append(lines[:30], fmt.Sprintf("... and %d more", len(vs)-30))
		}
		t.Errorf("seed %d: the ARP invariant broke in %d VIP-slots of %v outside the fail-over windows (%v after each action):\n%s",
			seed, len(vs), chaosSlot, chaosWindow, strings.Join(lines, "\n"))
	}
	for i := 1; i <= nodes; i++ {
		b, _ := os.ReadFile(c.lab.LogPath(c.lab.Node(i), "ringway"))
		if s := string(b); strings.Contains(s, "panic:") || strings.Contains(s, "fatal error:") {
			t.Errorf("n%d's log shows a panic (log: %s)", i, c.lab.LogPath(c.lab.Node(i), "ringway"))
		}
	}
}

func vipOwners(st mgmt.Status) string {
	var b strings.Builder
	for _, v := range st.VIPs {
		fmt.Fprintf(&b, "%s=%s ", v.VIP, v.Owner)
	}
	return b.String()
}

// membershipLine matches a node's info log line of a membership change.
var membershipLine = regexp.MustCompile(`^time=(\S+) level=INFO msg=membership change=(\S+) cause="((?:[^"\\]|\\.)*)"`)

// logEvents adds the membership changes in the nodes' logs to n.events:
// the logs outlive restarts, the statuses' last 32 events do not.
func (n *nemesis) logEvents() {
	for i := 1; i <= n.nodes; i++ {
		b, err := os.ReadFile(n.c.lab.LogPath(n.c.lab.Node(i), "ringway"))
		if err != nil {
			n.t.Errorf("n%d log: %v", i, err)
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			m := membershipLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			at, err := time.Parse(time.RFC3339Nano, m[1])
			if err != nil {
				continue
			}
			cause, err := strconv.Unquote(`"` + m[3] + `"`)
			if err != nil {
				cause = m[3]
			}
			e := mgmt.MembershipEvent{Time: at, Kind: m[2], Cause: cause, Learnt: strings.Contains(line, " learnt=true")}
			n.events[fmt.Sprintf("n%d %s %s %s", i, at.Format(time.RFC3339Nano), e.Kind, e.Cause)] = e
		}
	}
}

// unprovoked returns the membership changes, as made (not learnt), that
// fall between faults and outside every fail-over window of the nemesis, in
// time order.
func (n *nemesis) unprovoked() []mgmt.MembershipEvent {
	var out []mgmt.MembershipEvent
	for _, e := range n.events {
		if !e.Learnt && e.Time.After(n.start) && n.tl.fault(e.Time) == "" && !n.tl.inWindow(e.Time) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Time.Before(out[b].Time) })
	return out
}

func printChaosTable(t *testing.T, q config.Quorum, n *nemesis, ran time.Duration, checked int, unprovoked []mgmt.MembershipEvent) {
	var rows []*faultStats
	for _, s := range n.stats {
		rows = append(rows, s)
	}
	sort.Slice(rows, func(a, b int) bool { return rows[a].name < rows[b].name })
	var b strings.Builder
	fmt.Fprintf(&b, "chaos, quorum %s, %d nodes, seed %d, %v of faults, %d slots of %v checked on each side\n",
		q, n.nodes, n.seed, ran.Round(time.Second), checked/2, chaosSlot)
	fmt.Fprintf(&b, "%-20s %5s %7s %9s %9s %9s %9s %8s\n", "fault", "count", "heals", "ring p50", "ring max", "> 1 s", "changes", "max chg")
	var over []string
	for _, r := range rows {
		ds := slices.Clone(r.ring)
		slices.Sort(ds)
		p50, mx := time.Duration(0), time.Duration(0)
		missed := 0
		for _, d := range ds {
			if d > ringTarget {
				missed++
			}
		}
		if len(ds) > 0 {
			p50, mx = ds[(len(ds)-1)/2], ds[len(ds)-1]
		}
		sum, most := 0, 0
		for _, c := range r.changes {
			sum += c
			most = max(most, c)
		}
		fmt.Fprintf(&b, "%-20s %5d %7d %9s %9s %9d %9d %8d\n", r.name, r.count, len(ds),
			p50.Round(time.Millisecond), mx.Round(time.Millisecond), missed, sum, most)
		if missed > 0 {
			over = append(over, fmt.Sprintf("%s %d of %d", r.name, missed, len(ds)))
		}
	}
	if len(over) > 0 {
		fmt.Fprintf(&b, "heal-to-one-ring over the %v target: %s\n", ringTarget, strings.Join(over, ", "))
	}
	fmt.Fprintf(&b, "membership changes between faults, outside every window (false removals, not failed on): %d\n", len(unprovoked))
	for _, e := range unprovoked {
		fmt.Fprintf(&b, "  %s %s: %s\n", e.Time.Format("15:04:05.000"), e.Kind, e.Cause)
	}
	t.Log("\n" + b.String())
}

func copyChaosLogs(t *testing.T, c *cluster, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("chaos logs: %v", err)
		return
	}
	for i := 1; i <= c.lab.Nodes(); i++ {
		b, err := os.ReadFile(c.lab.LogPath(c.lab.Node(i), "ringway"))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, fmt.Sprintf("n%d.log", i)), b, 0o644)
		}
		if err != nil {
			t.Logf("chaos logs: %v", err)
		}
	}
}

func faultNames(fs []fault) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.name)
	}
	return out
}
