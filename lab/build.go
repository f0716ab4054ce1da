package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// build creates the topology; Build removes it again on error.
func (l *Lab) build(ctx context.Context) error {
	handles := map[string]netns.NsHandle{}
	defer func() {
		for _, h := range handles {
			h.Close()
		}
	}()
	for _, ns := range l.Namespaces() {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := createNamed(ns)
		if err != nil {
			return err
		}
		handles[ns] = h
		// Quiet namespaces: no IPv6 (no DAD, RS, MLD noise in captures), no
		// kernel forwarding unless a node asks for it.
		err = inNetns(h, func() error {
			for _, kv := range [][2]string{
				{"net.ipv6.conf.all.disable_ipv6", "1"},
				{"net.ipv6.conf.default.disable_ipv6", "1"},
				{"net.ipv4.ip_forward", "0"},
			} {
				if err := writeSysctl(kv[0], kv[1]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("netns %s: %w", ns, err)
		}
		if err := l.linkUp(ns, "lo"); err != nil {
			return err
		}
	}

	sw, err := netlink.NewHandleAt(handles[l.Switch()])
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", l.Switch(), err)
	}
	defer sw.Close()
	off := false
	for _, name := range []string{BridgeExt, BridgeInt} {
		// No multicast snooping: VRRP (224.0.0.18) and everything else floods
		// like on a dumb switch.
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}, MulticastSnooping: &off}
		if err := sw.LinkAdd(br); err != nil {
			return fmt.Errorf("create bridge %s in %s: %w", name, l.Switch(), err)
		}
		if err := sw.LinkSetUp(br); err != nil {
			return fmt.Errorf("bring up bridge %s: %w", name, err)
		}
	}

	type plug struct {
		port, bridge string // switch side
		ns, dev      string // far side
		addrs        []netip.Prefix
	}
	var plugs []plug
	plugs = append(plugs,
		plug{"client", BridgeExt, l.Client(), HostIf, []netip.Prefix{netip.PrefixFrom(ClientAddr, ExtPrefix.Bits())}},
		plug{"server", BridgeInt, l.Server(), HostIf, []netip.Prefix{netip.PrefixFrom(ServerAddr, IntPrefix.Bits())}},
	)
	for i := 1; i <= l.spec.Nodes; i++ {
		opt := l.spec.node(i)
		var ext, int_ []netip.Prefix
		if !opt.NoPrimary {
			ext = append(ext, netip.PrefixFrom(NodeExt(i), ExtPrefix.Bits()))
			int_ = append(int_, netip.PrefixFrom(NodeInt(i), IntPrefix.Bits()))
		}
		for _, a := range opt.Addrs {
			switch {
			case ExtPrefix.Contains(a.Addr()):
				ext = append(ext, a)
			case IntPrefix.Contains(a.Addr()):
				int_ = append(int_, a)
			default:
				return fmt.Errorf("node %d: address %s is in neither %s nor %s", i, a, ExtPrefix, IntPrefix)
			}
		}
		plugs = append(plugs,
			plug{SwitchPort(i, "ext"), BridgeExt, l.Node(i), ExtIf, ext},
			plug{SwitchPort(i, "int"), BridgeInt, l.Node(i), IntIf, int_},
		)
	}
	for _, p := range plugs {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Create the pair inside the switch with the peer directly in the far
		// namespace: no name ever appears in the host namespace.
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: p.port},
			PeerName:      p.dev,
			PeerNamespace: netlink.NsFd(int(handles[p.ns])),
		}
		if err := sw.LinkAdd(veth); err != nil {
			return fmt.Errorf("create veth %s (switch) <-> %s (%s): %w", p.port, p.dev, p.ns, err)
		}
		if err := attach(sw, p.port, p.bridge); err != nil {
			return err
		}
		if err := l.linkUp(l.Switch(), p.port); err != nil {
			return err
		}
		// The far side's sysctls exist once the device does.
		if err := l.SetSysctl(p.ns, "net.ipv6.conf."+p.dev+".disable_ipv6", "1"); err != nil {
			return err
		}
		for _, a := range p.addrs {
			if err := l.AddAddr(p.ns, p.dev, a); err != nil {
				return err
			}
		}
		if err := l.linkUp(p.ns, p.dev); err != nil {
			return err
		}
	}

	if err := l.staticNeighbors(); err != nil {
		return err
	}
	if l.spec.WireChecksums {
		for _, ns := range []string{l.Client(), l.Server()} {
			for _, o := range []Offload{OffloadTxChecksum, OffloadSG, OffloadTSO, OffloadGSO} {
				if err := l.SetOffload(ns, HostIf, o, false); err != nil {
					return err
				}
			}
		}
	}
	if err := l.defaultRoute(l.Client(), ExtGateway); err != nil {
		return err
	}
	if err := l.defaultRoute(l.Server(), IntGateway); err != nil {
		return err
	}
	for i := 1; i <= l.spec.Nodes; i++ {
		opt := l.spec.node(i)
		if opt.Forward {
			if err := l.SetSysctl(l.Node(i), "net.ipv4.ip_forward", "1"); err != nil {
				return err
			}
		}
		keys := make([]string, 0, len(opt.Sysctls))
		for k := range opt.Sysctls {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := l.SetSysctl(l.Node(i), k, opt.Sysctls[k]); err != nil {
				return fmt.Errorf("node %d: %w", i, err)
			}
		}
	}
	return nil
}

func (l *Lab) linkUp(ns, dev string) error {
	return l.withLink(ns, dev, func(h *netlink.Handle, link netlink.Link) error {
		if err := h.LinkSetUp(link); err != nil {
			return fmt.Errorf("bring up %s in %s: %w", dev, ns, err)
		}
		return nil
	})
}

func (l *Lab) defaultRoute(ns string, gw netip.Addr) error {
	return l.withLink(ns, HostIf, func(h *netlink.Handle, link netlink.Link) error {
		r := &netlink.Route{
			LinkIndex: link.Attrs().Index,
			Dst:       &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			Gw:        gw.AsSlice(),
		}
		if err := h.RouteAdd(r); err != nil {
			return fmt.Errorf("default route via %s in %s: %w", gw, ns, err)
		}
		return nil
	})
}
