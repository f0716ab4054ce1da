package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/mgmt"
)

// Ringway runs ringway nodes (`ringway run`) on the lab: the cluster of
// lab.ClusterConfig, in which the gateway VIPs .91 of both subnets form group
// gw1 with preferred node n1 and persistence "preferred". Every trial
// therefore cuts n1; after the heal the ring re-forms with all nodes and n1
// takes the VIPs back, so each trial starts from the same state.
//
// A cut node keeps running and does not know it is cut off (it goes on alone
// with the VIPs it held); Crash leaves it so and Recover heals the partition:
// the measurement covers the fail-over of a node that vanished from the
// network, and the recovery the merge of the two rings.
type Ringway struct {
	// Binary is the ringway executable (go build -o ... ./cmd/ringway). Required.
	Binary string
	// Edit adjusts node i's config after lab.ClusterConfig; nil keeps the
	// defaults (config.DefaultConfig timers).
	Edit func(i int, c *config.Config)
	// Label is the row's config name; default describes the default timers.
	Label string
	// LogLevel of the nodes; default "info" (debug logging costs CPU on
	// every token hop and would slow the ring on a busy machine).
	LogLevel string
	// Converge bounds how long Start and Recover wait for the ring; default 30 s.
	Converge time.Duration
	// LogDir, if set, receives a copy of every node's log when Stop runs
	// (the lab directory, and the logs in it, go away with the lab).
	LogDir string
	// Log, if set, records when each owner is about to be cut (to line up
	// with the node logs) and what a slow recovery waited for.
	Log *slog.Logger

	rotation float64 // median token rotation (ms) the nodes reported when the owner was last found
}

// RingwayDefaults is ringway with its default config, built from bin.
func RingwayDefaults(bin string) *Ringway { return &Ringway{Binary: bin} }

// Name implements System.
func (r *Ringway) Name() string { return "ringway" }

// Config implements System.
func (r *Ringway) Config() string {
	if r.Label != "" {
		return r.Label
	}
	d := config.DefaultConfig().Ring
	return fmt.Sprintf("defaults (hop %v, rotation %v, ack %v x%d)", d.HopInterval, d.MinRotation, d.AckTimeout, d.AckRetries)
}

// Node implements System: a ringway node (primary addresses, ip_forward=0).
func (r *Ringway) Node(i int) lab.NodeOptions { return lab.DefaultNode(i) }

func (r *Ringway) converge() time.Duration {
	if r.Converge > 0 {
		return r.Converge
	}
	return 30 * time.Second
}

// Start implements System: it writes the cluster's configs, starts every
// node and waits until they form one ring with n1 owning the gateway VIPs and
// the client and server resolving them to n1.
func (r *Ringway) Start(ctx context.Context, l *lab.Lab) error {
	if r.Binary == "" {
		return errors.New("ringway system: no binary (build one with `go build -o DIR/ringway ./cmd/ringway`)")
	}
	if _, err := os.Stat(r.Binary); err != nil {
		return fmt.Errorf("ringway binary: %w (build it with `go build -o %s ./cmd/ringway`)", err, r.Binary)
	}
	if _, err := l.WriteCluster(r.Edit); err != nil {
		return err
	}
	level := r.LogLevel
	if level == "" {
		level = "info"
	}
	for i := 1; i <= l.Nodes(); i++ {
		if err := l.StartNode(r.Binary, i, "--log-level", level); err != nil {
			return err
		}
	}
	return r.waitHome(ctx, l)
}

// Owner implements System: the owner of 203.0.113.91 on which every node
// agrees. It also checks that the client and the server resolve the gateway
// VIPs to that node's MACs, so the cut really interrupts the stream's path.
func (r *Ringway) Owner(ctx context.Context, l *lab.Lab) (int, error) {
	sts, err := statuses(ctx, l)
	if err != nil {
		return 0, err
	}
	var owner string
	for _, st := range sts {
		o := st.Owner(lab.ExtGateway)
		if o == "" {
			return 0, fmt.Errorf("%w (%s sees none)", ErrNoOwner, st.Node)
		}
		if owner != "" && o != owner {
			return 0, fmt.Errorf("nodes disagree on the owner of %s: %s and %s", lab.ExtGateway, owner, o)
		}
		owner = o
	}
	i, err := nodeIndex(owner, l.Nodes())
	if err != nil {
		return 0, err
	}
	if problem := resolvesTo(l, i); problem != "" {
		return 0, errors.New(problem)
	}
	rot := make([]float64, len(sts))
	for k, st := range sts {
		rot[k] = st.Rotation
	}
	slices.Sort(rot)
	r.rotation = rot[len(rot)/2]
	if r.Log != nil {
		r.Log.Info("ringway: owner found, cut follows", "owner", owner, "ring", sts[0].RingID, "rotation_ms", r.rotation)
	}
	return i, nil
}

// Crash implements System: nothing. The node was cut off its switch ports
// and keeps running, unaware, as a node whose links died upstream would.
func (r *Ringway) Crash(ctx context.Context, l *lab.Lab, node int) error { return nil }

// Recover implements System: after the heal, it waits until every node is a
// member of one ring with all nodes, n1 owns the gateway VIPs again
// (persistence preferred) and the client and server resolve them to n1.
func (r *Ringway) Recover(ctx context.Context, l *lab.Lab, node int) error {
	return r.waitHome(ctx, l)
}

// Stop implements System: SIGTERM (a graceful leave) to every node.
func (r *Ringway) Stop(ctx context.Context, l *lab.Lab) error {
	var errs []error
	for i := 1; i <= l.Nodes(); i++ {
		if err := l.StopNode(i, syscall.SIGTERM, 5*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("stop n%d: %w", i, err))
		}
	}
	if r.LogDir != "" {
		if err := r.copyLogs(l); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *Ringway) copyLogs(l *lab.Lab) error {
	if err := os.MkdirAll(r.LogDir, 0o755); err != nil {
		return err
	}
	for i := 1; i <= l.Nodes(); i++ {
		src := l.LogPath(l.Node(i), r.Binary)
		b, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("copy node log: %w", err)
		}
		if err := os.WriteFile(filepath.Join(r.LogDir, fmt.Sprintf("n%d.log", i)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// waitHome waits until the cluster is in its initial state (home) or the
// Converge time passes; the error then says what was still wrong and where
// the node logs are.
func (r *Ringway) waitHome(ctx context.Context, l *lab.Lab) error {
	start := time.Now()
	deadline := start.Add(r.converge())
	var first, last string // what was wrong at first and at the end
	for {
		problem := home(ctx, l)
		if problem == "" {
			if d := time.Since(start); r.Log != nil && d > time.Second {
				r.Log.Info("ringway: slow return to the initial state", "took", d.Round(time.Millisecond), "first", first, "last", last)
			}
			return nil
		}
		if first == "" {
			first = problem
		}
		last = problem
		if time.Now().After(deadline) {
			return fmt.Errorf("the ring did not re-form with every node and the gateway VIPs on n1 within %v: %s (node logs: %s)",
				r.converge(), problem, filepath.Join(l.Dir(), "logs"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// home says what keeps the cluster from its initial state, "" if nothing:
// every node a member of the same ring with all nodes, tables that agree,
// both gateway VIPs on n1, every open VIP owned by a member, and the client's
// and server's ARP caches (if they hold the gateway) pointing at n1.
func home(ctx context.Context, l *lab.Lab) string {
	sts, err := statuses(ctx, l)
	if err != nil {
		return err.Error()
	}
	want := make([]string, l.Nodes())
	for i := range want {
		want[i] = fmt.Sprintf("n%d", i+1)
	}
	if p := agree(sts, want); p != "" {
		return p
	}
	for _, gw := range []netip.Addr{lab.ExtGateway, lab.IntGateway} {
		if o := sts[0].Owner(gw); o != "n1" {
			return fmt.Sprintf("%s is owned by %q, not its preferred n1", gw, o)
		}
	}
	return resolvesTo(l, 1)
}

// agree says what is wrong with sts, "" if nothing: all members of one ring
// with exactly the members want (in any order), the same VIP owners
// everywhere, and every open VIP owned by a member.
func agree(sts []mgmt.Status, want []string) string {
	// Both sides sorted alike: want comes as n1..nN, which is not string
	// order from n10 on (a 32-node lab never converged for this check).
	sorted := slices.Clone(want)
	slices.Sort(sorted)
	for _, st := range sts {
		m := slices.Clone(st.Members)
		slices.Sort(m)
		if !slices.Equal(m, sorted) {
			return fmt.Sprintf("%s sees members %v (mode %s)", st.Node, st.Members, st.Mode)
		}
		if st.Mode != "member" {
			return fmt.Sprintf("%s is in mode %s", st.Node, st.Mode)
		}
		if st.RingID != sts[0].RingID {
			return fmt.Sprintf("%s is in ring %d, %s in ring %d", st.Node, st.RingID, sts[0].Node, sts[0].RingID)
		}
		if len(st.VIPs) != len(sts[0].VIPs) || len(st.VIPs) == 0 {
			return fmt.Sprintf("%s has %d VIPs, %s %d", st.Node, len(st.VIPs), sts[0].Node, len(sts[0].VIPs))
		}
		for k, v := range st.VIPs {
			if !v.Closed && !slices.Contains(want, v.Owner) {
				return fmt.Sprintf("%s: VIP %s owned by %q", st.Node, v.VIP, v.Owner)
			}
			if o := sts[0].VIPs[k]; o.VIP != v.VIP || o.Owner != v.Owner {
				return fmt.Sprintf("%s and %s disagree on the owner of %s", sts[0].Node, st.Node, v.VIP)
			}
		}
	}
	return ""
}

// statuses asks every node for its status (from inside its namespace: a cut
// node answers too).
func statuses(ctx context.Context, l *lab.Lab) ([]mgmt.Status, error) {
	var sts []mgmt.Status
	for i := 1; i <= l.Nodes(); i++ {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := l.NodeStatus(sctx, i)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("n%d status: %w", i, err)
		}
		sts = append(sts, st)
	}
	return sts, nil
}

// nodeIndex turns a lab node id ("n2") into its index.
func nodeIndex(id string, nodes int) (int, error) {
	i, err := strconv.Atoi(strings.TrimPrefix(id, "n"))
	if err != nil || !strings.HasPrefix(id, "n") || i < 1 || i > nodes {
		return 0, fmt.Errorf("owner %q is not a lab node n1..n%d", id, nodes)
	}
	return i, nil
}

// resolvesTo says whether the client's ARP entry for 203.0.113.91 and the
// server's for 198.51.100.91, where they exist, name node i's ext0 and int0
// MACs; "" if they do. (A missing entry is resolved afresh by the next
// datagram and answered by the owner.) The ringway owner sends gratuitous
// ARP on acquiring a VIP; until the client has it, its datagrams would go to
// the previous owner and a cut of node i would measure nothing.
func resolvesTo(l *lab.Lab, i int) string {
	for _, side := range []struct {
		host, nodeIf string
		gw           netip.Addr
	}{
		{l.Client(), lab.ExtIf, lab.ExtGateway},
		{l.Server(), lab.IntIf, lab.IntGateway},
	} {
		want, err := l.HardwareAddr(l.Node(i), side.nodeIf)
		if err != nil {
			return err.Error()
		}
		got, err := neighbor(l, side.host, side.gw)
		if err != nil {
			return err.Error()
		}
		if got != nil && got.String() != want.String() {
			return fmt.Sprintf("%s resolves %s to %s, not n%d's %s", side.host, side.gw, got, i, want)
		}
	}
	return ""
}

// neighbor returns the MAC of ip in the ARP cache of host's eth0, nil if it
// has no usable entry.
func neighbor(l *lab.Lab, host string, ip netip.Addr) (net.HardwareAddr, error) {
	h, err := l.Netlink(host)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	link, err := h.LinkByName(lab.HostIf)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", host, lab.HostIf, err)
	}
	neighs, err := h.NeighList(link.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("%s ARP cache: %w", host, err)
	}
	for _, n := range neighs {
		if n.IP.Equal(net.IP(ip.AsSlice())) && len(n.HardwareAddr) == 6 && n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) == 0 {
			return n.HardwareAddr, nil
		}
	}
	return nil, nil
}

var _ System = (*Ringway)(nil)
