package router

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// nftTableName is the netdev table SetupKernel owns.
const nftTableName = "ringway"

// KernelConfig says where and for which NICs SetupKernel keeps the kernel
// out of the router's way.
type KernelConfig struct {
	// Netns is the node's network namespace; <= 0 means the caller's.
	Netns netns.NsHandle
	// Links are the capture NICs and the node's primary address on each.
	Links []Link
	// VIPs are removed from the capture NICs if found there (a VIP on a NIC
	// makes the kernel answer ARP for it and accept its traffic).
	VIPs []netip.Addr
	// Logger receives one line per changed setting. Default slog.Default().
	Logger *slog.Logger
}

// KernelState records what SetupKernel changed, for Restore.
type KernelState struct {
	ns      netns.NsHandle
	log     *slog.Logger
	sysctls []sysctlChange
	nft     bool
}

type sysctlChange struct{ path, old string }

// SetupKernel puts the node's kernel in the state the router needs and
// returns a record to undo it (DESIGN.md "Pitfalls already seen"):
//
//   - net.ipv4.ip_forward=0: the kernel must not route what the router routes
//     (it then drops foreign traffic silently, with no ICMP and no RST);
//   - arp_ignore=1, arp_announce=2 on capture NICs: the kernel answers ARP
//     only for the NIC's own (primary) address and never advertises a VIP
//     living on the TUN device (weak host model);
//   - IPv6 off on capture NICs (no NDP/RS/MLD noise);
//   - net.ipv4.conf.all.rp_filter strict (1) becomes loose (2): the effective
//     value is the larger of "all" and the device's, and replies arriving on
//     the TUN device must pass;
//   - no VIP on a capture NIC (removed with a log line);
//   - nftables netdev ingress on each capture NIC drops IPv4 not addressed to
//     a primary address, so the kernel never duplicates VIP or transit
//     traffic; AF_PACKET (ETH_P_ALL) taps run before this hook and still see
//     every frame.
//
// NIC offloads are left alone: the router reads and writes virtio-net
// headers (PACKET_VNET_HDR), so partial checksums and GSO frames pass
// through correctly. SetupKernel is idempotent; call Restore on shutdown.
func SetupKernel(cfg KernelConfig) (*KernelState, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	k := &KernelState{ns: cfg.Netns, log: log}
	var primaries []netip.Addr
	for _, l := range cfg.Links {
		primaries = append(primaries, l.Primary.Addr())
	}
	err := inNetns(cfg.Netns, func() error {
		if err := k.set("net/ipv4/ip_forward", "0"); err != nil {
			return err
		}
		for _, l := range cfg.Links {
			for _, s := range []struct{ path, val string }{
				{"net/ipv4/conf/" + l.Name + "/arp_ignore", "1"},
				{"net/ipv4/conf/" + l.Name + "/arp_announce", "2"},
				{"net/ipv6/conf/" + l.Name + "/disable_ipv6", "1"},
			} {
				if err := k.set(s.path, s.val); err != nil {
					return err
				}
			}
		}
		if old, err := readSysctl("net/ipv4/conf/all/rp_filter"); err == nil && old == "1" {
			if err := k.set("net/ipv4/conf/all/rp_filter", "2"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		k.Restore()
		return nil, err
	}
	if err := removeVIPs(cfg, log); err != nil {
		k.Restore()
		return nil, err
	}
	if err := k.installNft(cfg.Links, primaries); err != nil {
		k.Restore()
		return nil, err
	}
	log.Info("router: offloads left enabled; partial checksums and GSO frames are carried through virtio-net headers (PACKET_VNET_HDR, IFF_VNET_HDR)")
	return k, nil
}

func sysctlPath(p string) string { return "/proc/sys/" + p }

func readSysctl(p string) (string, error) {
	b, err := os.ReadFile(sysctlPath(p))
	return strings.TrimSpace(string(b)), err
}

// set writes a sysctl (in the calling thread's namespace) and records the
// old value when it changed.
func (k *KernelState) set(p, val string) error {
	old, err := readSysctl(p)
	if err != nil {
		return fmt.Errorf("read sysctl %s: %w", strings.ReplaceAll(p, "/", "."), err)
	}
	if old == val {
		return nil
	}
	if err := os.WriteFile(sysctlPath(p), []byte(val), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", strings.ReplaceAll(p, "/", "."), val, err)
	}
	k.sysctls = append(k.sysctls, sysctlChange{p, old})
	k.log.Info("router: kernel setting changed", "sysctl", strings.ReplaceAll(p, "/", "."), "from", old, "to", val)
	return nil
}

func removeVIPs(cfg KernelConfig, log *slog.Logger) error {
	if len(cfg.VIPs) == 0 {
		return nil
	}
	h, err := nlHandle(cfg.Netns)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	vips := map[netip.Addr]bool{}
	for _, v := range cfg.VIPs {
		vips[v] = true
	}
	for _, l := range cfg.Links {
		lk, err := h.LinkByName(l.Name)
		if err != nil {
			return fmt.Errorf("find %s: %w", l.Name, err)
		}
		addrs, err := h.AddrList(lk, netlink.FAMILY_V4)
		if err != nil {
			return fmt.Errorf("list addresses of %s: %w", l.Name, err)
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP.To4())
			if ok && vips[ip] {
				if err := h.AddrDel(lk, &a); err != nil {
					return fmt.Errorf("remove VIP %v from %s: %w", ip, l.Name, err)
				}
				log.Warn("router: removed a VIP from a capture NIC; VIPs live on the TUN device only", "vip", ip, "nic", l.Name)
			}
		}
	}
	return nil
}

func (k *KernelState) nftConn() (*nftables.Conn, error) {
	if k.ns > 0 {
		return nftables.New(nftables.WithNetNSFd(int(k.ns)))
	}
	return nftables.New()
}

func (k *KernelState) installNft(links []Link, primaries []netip.Addr) error {
	c, err := k.nftConn()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if err := delNftTable(c); err != nil {
		return err
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyNetdev, Name: nftTableName})
	accept := nftables.ChainPolicyAccept
	for _, l := range links {
		ch := c.AddChain(&nftables.Chain{
			Name: "ingress-" + l.Name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookIngress, Priority: nftables.ChainPriorityFilter,
			Device: l.Name, Policy: &accept,
		})
		exprs := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x08, 0x00}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		}
		for _, p := range primaries {
			b := p.As4()
			exprs = append(exprs, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: b[:]})
		}
		exprs = append(exprs, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install nftables netdev ingress rules (table %s): %w (is nf_tables available?)", nftTableName, err)
	}
	k.nft = true
	k.log.Info("router: nftables netdev ingress drops IPv4 not addressed to a primary address", "table", nftTableName, "primaries", primaries)
	return nil
}

func delNftTable(c *nftables.Conn) error {
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyNetdev)
	if err != nil {
		return fmt.Errorf("list nftables tables: %w", err)
	}
	for _, t := range ts {
		if t.Name == nftTableName {
			c.DelTable(t)
			if err := c.Flush(); err != nil {
				return fmt.Errorf("delete nftables table %s: %w", nftTableName, err)
			}
		}
	}
	return nil
}

// Restore undoes SetupKernel: the nftables table goes, every changed sysctl
// gets its old value back (in reverse order). Safe to call twice.
func (k *KernelState) Restore() error {
	if k == nil {
		return nil
	}
	var errs []error
	if k.nft {
		c, err := k.nftConn()
		if err == nil {
			err = delNftTable(c)
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, err)
		}
		k.nft = false
	}
	changes := k.sysctls
	k.sysctls = nil
	err := inNetns(k.ns, func() error {
		for i := len(changes) - 1; i >= 0; i-- {
			c := changes[i]
			if err := os.WriteFile(sysctlPath(c.path), []byte(c.old), 0o644); err != nil {
				// An interface that went away took its settings with it.
				var pe *os.PathError
				if !errors.As(err, &pe) || !errors.Is(err, os.ErrNotExist) {
					errs = append(errs, fmt.Errorf("restore sysctl %s: %w", c.path, err))
				}
			}
		}
		return nil
	})
	errs = append(errs, err)
	return errors.Join(errs...)
}
