//go:build linux

package main

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ringway/ringway/forward"
	"github.com/ringway/ringway/lab"
)

// The accept rules both stateful modes get: the generator's UDP flows and
// iperf3's TCP port, from the client's side (ext0) to the server's (int0).
// Anything else that starts a flow is dropped; replies pass as tracked
// (ringway) or ct state established,related (kernel).
const (
	genPort   = 9    // the generator's UDP destination port (discard)
	iperfPort = 5201 // iperf3's TCP port, given to server and client
	probePort = 10   // a UDP port no rule accepts: the probe that checks the rules apply
)

// ringwayFilter is the stateful filter of the ringway-stateful mode: router
// links ext0 (0) and int0 (1), as node/filter.go maps a config whose rules
// say `from: [ext], to: [int]`.
func ringwayFilter(vips []netip.Addr) (*forward.Filter, error) {
	const ext, int_ = 0, 1
	return forward.New(forward.Config{
		Links: []forward.Link{
			{Prefix: lab.ExtPrefix, Primary: lab.NodeExt(1)},
			{Prefix: lab.IntPrefix, Primary: lab.NodeInt(1)},
		},
		VIPs: vips,
		Rules: []forward.Rule{
			{Name: "generator", FromLinks: []int{ext}, ToLinks: []int{int_}, Proto: forward.ProtoUDP,
				Ports: []forward.PortRange{{Lo: genPort, Hi: genPort}}, Action: forward.Accept},
			{Name: "iperf3", FromLinks: []int{ext}, ToLinks: []int{int_}, Proto: forward.ProtoTCP,
				Ports: []forward.PortRange{{Lo: iperfPort, Hi: iperfPort}}, Action: forward.Accept},
		},
		Default: forward.Drop,
	})
}

// nftRuleset is the kernel-nft mode's rule set in the gateway node's
// namespace, the equivalent of
//
//	table inet filter {
//		chain forward {
//			type filter hook forward priority filter; policy drop;
//			ct state established,related counter accept
//			iifname "ext0" oifname "int0" udp dport 9 counter accept
//			iifname "ext0" oifname "int0" tcp dport 5201 counter accept
//			counter drop
//		}
//	}
//
// The last rule only counts what the policy would drop anyway, so the
// bench can check that a probe to a port no rule accepts is dropped.
type nftRuleset struct {
	ns    netns.NsHandle
	table *nftables.Table
	chain *nftables.Chain
}

const nftTable, nftChain = "filter", "forward"

// nftCounters are the rules' counters, in the order above.
type nftCounters struct{ Established, UDP, TCP, Drop uint64 }

func installNft(ns netns.NsHandle) (*nftRuleset, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	if t, err := c.ListTableOfFamily(nftTable, nftables.TableFamilyINet); err == nil {
		return nil, fmt.Errorf("table inet %s already exists in the node's namespace", t.Name)
	}
	n := &nftRuleset{ns: ns}
	n.table = c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: nftTable})
	drop := nftables.ChainPolicyDrop
	n.chain = c.AddChain(&nftables.Chain{Name: nftChain, Table: n.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &drop})
	add := func(e ...expr.Any) { c.AddRule(&nftables.Rule{Table: n.table, Chain: n.chain, Exprs: e}) }
	add(
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictAccept},
	)
	for _, p := range []struct {
		proto byte
		port  uint16
	}{{unix.IPPROTO_UDP, genPort}, {unix.IPPROTO_TCP, iperfPort}} {
		add(
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(lab.ExtIf)},
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(lab.IntIf)},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p.proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(p.port)},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictAccept},
		)
	}
	add(&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("install table inet %s: %w", nftTable, err)
	}
	return n, nil
}

// counters reads the rules' counters back from the kernel.
func (n *nftRuleset) counters() (nftCounters, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(n.ns)))
	if err != nil {
		return nftCounters{}, err
	}
	rules, err := c.GetRules(n.table, n.chain)
	if err != nil {
		return nftCounters{}, err
	}
	var v []uint64
	for _, r := range rules {
		for _, e := range r.Exprs {
			if ctr, ok := e.(*expr.Counter); ok {
				v = append(v, ctr.Packets)
			}
		}
	}
	if len(v) != 4 {
		return nftCounters{}, fmt.Errorf("table inet %s: %d counters, want 4", nftTable, len(v))
	}
	return nftCounters{Established: v[0], UDP: v[1], TCP: v[2], Drop: v[3]}, nil
}

// remove deletes the table and checks it is gone.
func (n *nftRuleset) remove() error {
	c, err := nftables.New(nftables.WithNetNSFd(int(n.ns)))
	if err != nil {
		return err
	}
	c.DelTable(n.table)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("delete table inet %s: %w", nftTable, err)
	}
	if _, err := c.ListTableOfFamily(nftTable, nftables.TableFamilyINet); err == nil {
		return errors.New("table inet " + nftTable + " still there after its deletion")
	}
	return nil
}

// ifname is an interface name as nftables compares it (IFNAMSIZ, NUL padded).
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}
