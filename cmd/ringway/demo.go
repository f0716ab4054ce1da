package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/lab/workload"
	"github.com/ringway/ringway/mgmt"
)

// demo tells the story of DESIGN.md in a few seconds: a live cluster, a
// node cut off while a 1 kHz stream crosses it, the VIPs moving, and the
// node's return.
func demo(ctx context.Context, prefix, stateDir string, keep bool, w io.Writer) (err error) {
	step := func(format string, args ...any) { fmt.Fprintf(w, "\n== "+format+"\n", args...) }
	say := func(format string, args ...any) { fmt.Fprintf(w, "   "+format+"\n", args...) }

	_ = lab.Cleanup(prefix, stateDir) // a previous demo that crashed
	step("Building the reference lab in network namespaces %s-* (nothing touches this host's network)", prefix)
	say("client %s (default gateway VIP %s) ── switch ── n1 n2 n3 ── server %s (default gateway VIP %s)",
		lab.ClientAddr, lab.ExtGateway, lab.ServerAddr, lab.IntGateway)
	say("each node: ext0 203.0.113.i, int0 198.51.100.i; VIPs .91-.94 on both subnets, held by no NIC")
	start := time.Now()
	l, err := labUp(ctx, prefix, stateDir, 3, demoFilter, io.Discard)
	if err != nil {
		return err
	}
	defer func() {
		if keep {
			step("Leaving the lab running: `ringway lab status --prefix %s`, `ringway lab down --prefix %s`", prefix, prefix)
			return
		}
		step("Cleaning up")
		if cerr := l.Close(); cerr != nil && err == nil {
			err = cerr
		}
		say("namespaces and processes removed")
	}()

	step("Starting 3 ringway nodes: they find each other, form a token ring and place the VIPs")
	st, err := demoWait(ctx, l, 1, 15*time.Second, func(st mgmt.Status) bool {
		return len(st.Members) == 3 && st.Owner(lab.ExtGateway) == "n1"
	})
	if err != nil {
		return err
	}
	say("ring formed %.1f s after the lab was built; every node carries this table:", time.Since(start).Seconds())
	printIndented(w, st)

	step("Sending a 1 kHz UDP echo stream client → server through the gateway VIPs")
	echo := netip.AddrPortFrom(lab.ServerAddr, 7)
	sctx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	stream, err := workload.StartStream(sctx, l, l.Client(), workload.DefaultStreamConfig(echo))
	if err != nil {
		return err
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	err = stream.WaitFlowing(wctx, 300*time.Millisecond)
	wcancel()
	if err != nil {
		return fmt.Errorf("no traffic through the cluster: %w (node logs: %s/logs)", err, l.Dir())
	}
	if err := pause(ctx, time.Second); err != nil {
		return err
	}
	snap := stream.Snapshot()
	say("%d sent, %d answered so far; the client's packets cross n1, which owns %s", snap.Sent, snap.Received, lab.ExtGateway)

	step("The stateful filter on every node: rule %q accepts the client's UDP to %s; the replies pass by the flow", demoRule, echo)
	say("the server now tries to open connections towards the client (UDP and TCP): nothing the rules accept")
	blocked := demoServerKnocks(l)
	// A first packet no rule accepts may be a reply of a flow another node
	// handles, so it goes to the flow's authoritative node, which drops it
	// there: the count is the cluster's, not one node's.
	drops, err := demoRuleDrops(ctx, l, 2, 5*time.Second)
	if err != nil {
		return fmt.Errorf("the filter did not count the blocked attempts: %w", err)
	}
	say("%s; the nodes count them as dropped by the rules: %s", blocked, drops)
	if fl, err := demoFlows(ctx, l, 1); err == nil {
		for _, f := range fl.Flows {
			say("  n1 tracks %s %s → %s %s (rule %s), %d/%d packets each way", f.Proto, f.Src, f.Dst, f.State, f.Rule, f.PacketsOrig, f.PacketsReply)
		}
	}

	before := st
	step("Cutting n1 off the switch (it is not told: its NICs stay up, it just stops hearing anyone)")
	cutAt := time.Now()
	if err := l.Cut(1); err != nil {
		return err
	}
	after, err := demoWait(ctx, l, 2, 10*time.Second, func(st mgmt.Status) bool {
		return slices.Equal(st.Members, []string{"n2", "n3"}) && st.Owner(lab.ExtGateway) != "n1"
	})
	if err != nil {
		return err
	}
	say("n2 and n3 dropped n1 from the ring %.0f ms after the cut (seen through the management API)", float64(time.Since(cutAt).Microseconds())/1000)
	if err := pause(ctx, time.Second); err != nil {
		return err
	}
	rep := stream.Snapshot()
	say("longest outage the client saw: %s   (keepalived with default timers: about 3.2 s on this lab)", round(rep.LongestGap))
	say("VIPs that moved (gratuitous ARP told the client and the server at once):")
	for _, v := range before.VIPs {
		if o := after.Owner(v.VIP); o != v.Owner {
			say("  %-15s %s → %s", v.VIP, v.Owner, o)
		}
	}

	step("Reconnecting n1: it hears the ring again and the two rings merge")
	if err := l.Heal(1); err != nil {
		return err
	}
	healed, err := demoWait(ctx, l, 2, 15*time.Second, func(st mgmt.Status) bool {
		return len(st.Members) == 3 && st.Owner(lab.ExtGateway) == "n1" && st.Owner(lab.IntGateway) == "n1"
	})
	if err != nil {
		return err
	}
	say("one ring again; %s and %s (group gw1, persistence preferred, n1) went back to n1,", lab.ExtGateway, lab.IntGateway)
	say("VIPs without a preference stayed where fail-over put them:")
	printIndented(w, healed)
	if err := pause(ctx, 500*time.Millisecond); err != nil {
		return err
	}
	rep = stream.Stop()
	say("stream in total: %d sent, %d answered, %d lost; longest outage %s", rep.Sent, rep.Received, rep.Lost, round(rep.LongestGap))
	return nil
}

// demoWait polls node i's status until ok holds.
func demoWait(ctx context.Context, l *lab.Lab, i int, within time.Duration, ok func(mgmt.Status) bool) (mgmt.Status, error) {
	deadline := time.Now().Add(within)
	var last mgmt.Status
	var lastErr error
	for time.Now().Before(deadline) {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := l.NodeStatus(sctx, i)
		cancel()
		if err == nil {
			last = st
			if ok(st) {
				return st, nil
			}
		}
		lastErr = err
		if err := pause(ctx, 20*time.Millisecond); err != nil {
			return last, err
		}
	}
	if lastErr != nil {
		return last, fmt.Errorf("n%d did not reach the expected state within %v: %w (node logs: %s/logs)", i, within, lastErr, l.Dir())
	}
	return last, fmt.Errorf("n%d did not reach the expected state within %v; it sees members %v (node logs: %s/logs)", i, within, last.Members, l.Dir())
}

// pause waits d, or less if ctx ends (Ctrl-C: the demo then cleans up).
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("demo interrupted: %w", context.Cause(ctx))
	}
}

func printIndented(w io.Writer, st mgmt.Status) {
	var b strings.Builder
	printStatus(&b, st)
	for _, line := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		fmt.Fprintln(w, strings.TrimRight("     "+line, " "))
	}
}

func round(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(100 * time.Microsecond)
}

// demoRule is the demo's one filter rule: the client side may reach the
// server's UDP echo; everything else that starts a flow is dropped.
const demoRule = "clients-to-echo"

// demoFilter turns the stateful filter on in the demo's node configs.
func demoFilter(_ int, c *config.Config) {
	c.Filter.Enabled = true
	c.Filter.Default = config.ActionDrop
	c.Filter.Rules = []config.Rule{{
		Name: demoRule, From: []config.Net{{Name: "ext"}},
		To:    []config.Net{{Prefix: netip.PrefixFrom(lab.ServerAddr, 32)}},
		Proto: config.ProtoUDP, Ports: []config.PortRange{{First: 7, Last: 7}}, Action: config.ActionAccept,
	}}
}

// demoServerKnocks sends, from the server, a UDP datagram and a TCP SYN
// towards the client: the filter must drop both (no rule accepts flows the
// inside starts). It says what it tried.
func demoServerKnocks(l *lab.Lab) string {
	client := netip.AddrPortFrom(lab.ClientAddr, 9)
	_ = l.Do(l.Server(), func() error {
		if c, err := net.Dial("udp4", client.String()); err == nil {
			c.Write([]byte("knock"))
			c.Close()
		}
		if c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(lab.ClientAddr, 22).String(), 300*time.Millisecond); err == nil {
			c.Close()
		}
		return nil
	})
	return fmt.Sprintf("UDP to %s and TCP to %s:22 got no answer (dropped, not reset)", client, lab.ClientAddr)
}

// demoFlows asks node i for its flow table.
func demoFlows(ctx context.Context, l *lab.Lab, i int) (mgmt.Flows, error) {
	var fl mgmt.Flows
	err := l.NodeAPI(i, func(c *mgmt.Client) (err error) {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		fl, err = c.Flows(cctx, mgmt.FlowQuery{})
		return err
	})
	return fl, err
}

// demoRuleDrops waits until the nodes together count at least want packets
// dropped by the rules, and says how many each counted.
func demoRuleDrops(ctx context.Context, l *lab.Lab, want uint64, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	for {
		var total uint64
		var parts []string
		for i := 1; i <= l.Nodes(); i++ {
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			st, err := l.NodeStatus(sctx, i)
			cancel()
			if err != nil || st.Filter == nil {
				continue
			}
			n := st.Filter.Drops["rule"]
			total += n
			parts = append(parts, fmt.Sprintf("%s %d", st.Node, n))
		}
		if total >= want {
			return strings.Join(parts, ", "), nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%d dropped by the rules within %v, want %d (%s; node logs: %s/logs)", total, within, want, strings.Join(parts, ", "), l.Dir())
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return "", err
		}
	}
}
