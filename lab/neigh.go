package lab

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// staticNeighbors gives every node permanent ARP entries for the other
// nodes' primary addresses on both subnets.
//
// Why: the kernel's ARP table is one table for the whole host, shared by
// every network namespace, and its gc_thresh3 (1024 entries by default) is
// a host-wide cap that only the host's own namespace may change. Nodes that
// all talk to each other need 2·N·(N−1) entries: 1104 at N=24, 1984 at
// N=32, 8064 at N=64. Past the cap the kernel logs "neighbour: arp_cache:
// neighbor table overflow!", evicts entries to make room for others and
// drops the datagrams that wait for them. On 32 separate machines each would
// hold 62 entries; in one kernel a 32-node lab lost ring datagrams by the
// thousand and its ring never converged (docs/lab.md). Permanent entries
// are exempt from the cap and from garbage collection (Linux ≥ 4.20), so
// the lab behaves like separate hosts. Only node-to-node addresses are
// static: ARP for the VIPs and to the client and the server stays dynamic,
// because that is what ringway and the tests exercise.
func (l *Lab) staticNeighbors() error {
	type nic struct {
		addr netip.Addr
		mac  net.HardwareAddr
	}
	var nics [2][]nic // per subnet (ext, int): every node with its primary
	devs := [2]string{ExtIf, IntIf}
	addrOf := [2]func(int) netip.Addr{NodeExt, NodeInt}
	for i := 1; i <= l.spec.Nodes; i++ {
		if l.spec.node(i).NoPrimary {
			continue
		}
		for s, dev := range devs {
			err := l.withLink(l.Node(i), dev, func(_ *netlink.Handle, link netlink.Link) error {
				nics[s] = append(nics[s], nic{addrOf[s](i), link.Attrs().HardwareAddr})
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	for i := 1; i <= l.spec.Nodes; i++ {
		if l.spec.node(i).NoPrimary {
			continue
		}
		for s, dev := range devs {
			self := addrOf[s](i)
			err := l.withLink(l.Node(i), dev, func(h *netlink.Handle, link netlink.Link) error {
				for _, n := range nics[s] {
					if n.addr == self {
						continue
					}
					e := &netlink.Neigh{
						LinkIndex:    link.Attrs().Index,
						Family:       netlink.FAMILY_V4,
						State:        netlink.NUD_PERMANENT,
						IP:           n.addr.AsSlice(),
						HardwareAddr: n.mac,
					}
					if err := h.NeighSet(e); err != nil {
						return fmt.Errorf("static ARP entry %s → %s on %s in %s: %w", n.addr, n.mac, dev, l.Node(i), err)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}
