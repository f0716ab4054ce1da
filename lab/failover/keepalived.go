package failover

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ringway/ringway/lab"
)

// Keepalived runs keepalived (VRRP) on the lab's nodes as the comparison for
// ringway: kernel forwarding (ip_forward=1, primary addresses on ext0/int0),
// one VRRP instance per subnet for the gateway VIPs .91 in a sync group,
// node 1 with the highest priority (250, 200, 150, ...; preemption on).
type Keepalived struct {
	Binary string  // default "keepalived" on PATH
	V3     bool    // vrrp_version 3; false: keepalived's default (VRRPv2)
	Advert float64 // advert_int in seconds; 0: keepalived's default (1 s)
}

// KeepalivedDefaults is keepalived with its default timers (VRRPv2, advert 1 s).
func KeepalivedDefaults() *Keepalived { return &Keepalived{} }

// KeepalivedV3Fast is VRRPv3 with 100 ms adverts.
func KeepalivedV3Fast() *Keepalived { return &Keepalived{V3: true, Advert: 0.1} }

// Name implements System.
func (k *Keepalived) Name() string { return "keepalived" }

// Config implements System.
func (k *Keepalived) Config() string {
	v := "VRRPv2"
	if k.V3 {
		v = "VRRPv3"
	}
	if k.Advert == 0 {
		return "defaults (" + v + ", advert 1 s)"
	}
	return fmt.Sprintf("%s, advert %v", v, time.Duration(k.Advert*float64(time.Second)))
}

// Node implements System: a kernel router with its primary addresses.
func (k *Keepalived) Node(i int) lab.NodeOptions { return lab.KernelRouter(i) }

// Priority of node i: node 1 highest.
func Priority(i int) int { return 250 - 50*(i-1) }

// ConfigFile returns node i's keepalived.conf.
func (k *Keepalived) ConfigFile(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# ringway lab: keepalived on node %d (generated)\n", i)
	fmt.Fprintf(&b, "global_defs {\n    router_id n%d\n", i)
	if k.V3 {
		b.WriteString("    vrrp_version 3\n")
	}
	b.WriteString("}\n\n")
	b.WriteString("vrrp_sync_group gw {\n    group {\n        ext\n        int\n    }\n}\n")
	for _, in := range []struct {
		name, dev string
		vrid      int
		vip       netip.Prefix
	}{
		{"ext", lab.ExtIf, 51, netip.PrefixFrom(lab.ExtGateway, lab.ExtPrefix.Bits())},
		{"int", lab.IntIf, 52, netip.PrefixFrom(lab.IntGateway, lab.IntPrefix.Bits())},
	} {
		fmt.Fprintf(&b, "\nvrrp_instance %s {\n    state BACKUP\n    interface %s\n    virtual_router_id %d\n    priority %d\n",
			in.name, in.dev, in.vrid, Priority(i))
		if k.Advert != 0 {
			fmt.Fprintf(&b, "    advert_int %g\n", k.Advert)
		}
		fmt.Fprintf(&b, "    virtual_ipaddress {\n        %s dev %s\n    }\n}\n", in.vip, in.dev)
	}
	return b.String()
}

func (k *Keepalived) binary() string {
	if k.Binary != "" {
		return k.Binary
	}
	return "keepalived"
}

// Start implements System.
func (k *Keepalived) Start(ctx context.Context, l *lab.Lab) error {
	if _, err := exec.LookPath(k.binary()); err != nil {
		return fmt.Errorf("keepalived not found (%w): install it (apt-get install keepalived) or run `make bench-failover-keepalived`, which does", err)
	}
	for i := 1; i <= l.Nodes(); i++ {
		if err := k.startNode(l, i); err != nil {
			return err
		}
	}
	return nil
}

func (k *Keepalived) startNode(l *lab.Lab, i int) error {
	dir := filepath.Join(l.Dir(), fmt.Sprintf("keepalived-n%d", i))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	conf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(conf, []byte(k.ConfigFile(i)), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(k.binary(), "--dont-fork", "--log-console", "--log-detail", "--vrrp", "--no-syslog",
		"--use-file", conf,
		"--pid", filepath.Join(dir, "keepalived.pid"),
		"--vrrp_pid", filepath.Join(dir, "vrrp.pid"),
		"--checkers_pid", filepath.Join(dir, "checkers.pid"),
		"--bfd_pid", filepath.Join(dir, "bfd.pid"))
	if err := l.Start(l.Node(i), cmd); err != nil {
		return fmt.Errorf("start keepalived on node %d: %w", i, err)
	}
	go cmd.Wait() // reap; Crash and Stop signal by namespace
	return nil
}

// Owner implements System: the node holding 203.0.113.91 on ext0.
func (k *Keepalived) Owner(ctx context.Context, l *lab.Lab) (int, error) {
	var owners []int
	for i := 1; i <= l.Nodes(); i++ {
		addrs, err := l.Addrs(l.Node(i), lab.ExtIf)
		if err != nil {
			return 0, err
		}
		for _, a := range addrs {
			if a.Addr() == lab.ExtGateway {
				owners = append(owners, i)
			}
		}
	}
	switch len(owners) {
	case 0:
		return 0, ErrNoOwner
	case 1:
		return owners[0], nil
	}
	return 0, fmt.Errorf("%v all hold %s", owners, lab.ExtGateway)
}

// Crash implements System: keepalived on node i dies (SIGKILL) and the
// VIPs it left on the NICs go, as they would with a reboot.
func (k *Keepalived) Crash(ctx context.Context, l *lab.Lab, i int) error {
	if _, err := l.Signal(l.Node(i), syscall.SIGKILL); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := l.WaitGone(wctx, l.Node(i)); err != nil {
		return err
	}
	// A reboot empties /run: keepalived refuses to start while its pid files
	// name a process that still exists (an unreaped child counts).
	dir := filepath.Join(l.Dir(), fmt.Sprintf("keepalived-n%d", i))
	for _, f := range []string{"keepalived.pid", "vrrp.pid", "checkers.pid", "bfd.pid"} {
		os.Remove(filepath.Join(dir, f))
	}
	for _, v := range []struct {
		dev string
		p   netip.Prefix
	}{
		{lab.ExtIf, netip.PrefixFrom(lab.ExtGateway, 24)},
		{lab.IntIf, netip.PrefixFrom(lab.IntGateway, 24)},
	} {
		if err := l.DelAddr(l.Node(i), v.dev, v.p); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return err
		}
	}
	return nil
}

// Recover implements System: keepalived starts again on node i, which has the
// highest priority when it is node 1 and takes the VIPs back (preemption);
// Recover returns once the VIP owner is the expected node.
func (k *Keepalived) Recover(ctx context.Context, l *lab.Lab, i int) error {
	if err := k.startNode(l, i); err != nil {
		return err
	}
	want := 1 // the highest priority live node
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := k.Owner(ctx, l)
		if err == nil && got == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %d did not take %s back within 30 s (owner %d, %v); see %s", want, lab.ExtGateway, got, err, l.LogPath(l.Node(want), "keepalived"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop implements System.
func (k *Keepalived) Stop(ctx context.Context, l *lab.Lab) error {
	var errs []error
	for i := 1; i <= l.Nodes(); i++ {
		if _, err := l.Signal(l.Node(i), syscall.SIGTERM); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var _ System = (*Keepalived)(nil)
