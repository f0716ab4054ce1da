package router

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// tunDev is the local delivery device: every VIP is configured on it (the
// patent's Figure 15), packets for owned VIPs are written to it, and a policy
// rule per VIP sends the OS's replies (source = a VIP) back into it, where
// the router reads and routes them.
//
// wireguard's tun package creates the device with IFF_VNET_HDR and TSO/CSUM
// offloads and owns its lifecycle; the router reads and writes the device
// file directly so virtio-net headers pass through unchanged in both
// directions (GSO super-frames and partial checksums are not split or
// completed in user space).
type tunDev struct {
	dev   tun.Device
	file  *os.File
	name  string
	rules []*netlink.Rule
	cfg   *Config
}

func openTUN(cfg *Config, mtu int) (*tunDev, error) {
	var dev tun.Device
	err := inNetns(cfg.Netns, func() error {
		var err error
		dev, err = tun.CreateTUN(cfg.TUNName, mtu)
		if err != nil {
			return err
		}
		// The device sysctls exist now; rp_filter loose so replies from
		// hosts on capture NICs are accepted on the TUN device.
		for _, s := range []struct{ p, v string }{
			{"net/ipv4/conf/" + cfg.TUNName + "/rp_filter", "2"},
			{"net/ipv6/conf/" + cfg.TUNName + "/disable_ipv6", "1"},
		} {
			if err := os.WriteFile(sysctlPath(s.p), []byte(s.v), 0o644); err != nil {
				return fmt.Errorf("set %s: %w", s.p, err)
			}
		}
		return nil
	})
	if err != nil {
		if dev != nil {
			dev.Close()
		}
		return nil, fmt.Errorf("create TUN device %s: %w", cfg.TUNName, err)
	}
	go func() {
		for range dev.Events() { // wireguard blocks on an undrained channel
		}
	}()
	t := &tunDev{dev: dev, file: dev.File(), name: cfg.TUNName, cfg: cfg}
	if err := t.configure(); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

func (t *tunDev) configure() error {
	h, err := nlHandle(t.cfg.Netns)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	l, err := h.LinkByName(t.name)
	if err != nil {
		return fmt.Errorf("find %s: %w", t.name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", t.name, err)
	}
	for _, v := range t.cfg.VIPs {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: v.AsSlice(), Mask: net.CIDRMask(32, 32)}}
		if err := h.AddrReplace(l, a); err != nil {
			return fmt.Errorf("add VIP %v to %s: %w", v, t.name, err)
		}
	}
	rt := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Table: t.cfg.TUNTable, Scope: netlink.SCOPE_LINK}
	if err := h.RouteReplace(rt); err != nil {
		return fmt.Errorf("route table %d default dev %s: %w", t.cfg.TUNTable, t.name, err)
	}
	for _, v := range t.cfg.VIPs {
		r := vipRule(t.cfg, v)
		_ = h.RuleDel(r) // left over from a crash
		if err := h.RuleAdd(r); err != nil {
			return fmt.Errorf("rule from %v lookup %d: %w", v, t.cfg.TUNTable, err)
		}
		t.rules = append(t.rules, r)
	}
	return nil
}

func vipRule(cfg *Config, v netip.Addr) *netlink.Rule {
	r := netlink.NewRule()
	r.Family = unix.AF_INET
	r.Src = &net.IPNet{IP: v.AsSlice(), Mask: net.CIDRMask(32, 32)}
	r.Table = cfg.TUNTable
	r.Priority = cfg.TUNRulePriority
	return r
}

// close removes the policy rules and the device (its addresses and routes
// go with it).
func (t *tunDev) close() error {
	var errs []error
	if len(t.rules) > 0 {
		if h, err := nlHandle(t.cfg.Netns); err == nil {
			for _, r := range t.rules {
				if err := h.RuleDel(r); err != nil && !errors.Is(err, unix.ENOENT) {
					errs = append(errs, fmt.Errorf("delete rule from %v: %w", r.Src, err))
				}
			}
			h.Close()
		} else {
			errs = append(errs, err)
		}
		t.rules = nil
	}
	if err := t.dev.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
