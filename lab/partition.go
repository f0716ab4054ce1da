package lab

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// partitionBridge is the bridge of side ("ext", "int") for partition group
// k: group 0 is the lab's own bridges (with the client and the server), group
// k ≥ 1 a bridge of its own in the switch namespace.
func partitionBridge(side string, k int) string {
	if k == 0 {
		return "br-" + side
	}
	return fmt.Sprintf("br-%s%d", side, k)
}

// Partition splits the switch into groups that cannot reach each other: the
// nodes of groups[0] stay on br-ext and br-int with the client and the server,
// the nodes of groups[k] (k ≥ 1) move to bridges br-ext<k> and br-int<k> of
// their own. Nodes in no group stay where they are. A node's NICs keep their
// carrier, as with Cut; a cut node stays cut (in its new group) and an
// impaired node keeps its relays. Unpartition undoes it.
func (l *Lab) Partition(groups ...[]int) error {
	seen := map[int]bool{}
	for _, g := range groups {
		for _, i := range g {
			if err := l.checkNode(i); err != nil {
				return fmt.Errorf("partition: %w", err)
			}
			if seen[i] {
				return fmt.Errorf("partition: node %d is in two groups", i)
			}
			seen[i] = true
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	h, err := l.Netlink(l.Switch())
	if err != nil {
		return err
	}
	defer h.Close()
	for k, g := range groups {
		if k > 0 {
			for _, side := range []string{"ext", "int"} {
				if err := ensureBridge(h, partitionBridge(side, k)); err != nil {
					return fmt.Errorf("partition: %w", err)
				}
			}
		}
		for _, i := range g {
			l.group[i] = k
			if err := l.place(h, i); err != nil {
				return fmt.Errorf("partition: node %d: %w", i, err)
			}
		}
	}
	return nil
}

// Unpartition puts every partitioned node back on br-ext and br-int.
func (l *Lab) Unpartition() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, err := l.Netlink(l.Switch())
	if err != nil {
		return err
	}
	defer h.Close()
	for i, k := range l.group {
		if k == 0 {
			continue
		}
		delete(l.group, i)
		if err := l.place(h, i); err != nil {
			return fmt.Errorf("unpartition: node %d: %w", i, err)
		}
	}
	return nil
}

// ensureBridge creates and brings up bridge name if it does not exist, with
// multicast snooping off like the lab's own bridges.
func ensureBridge(h *netlink.Handle, name string) error {
	if _, err := h.LinkByName(name); err == nil {
		return nil
	}
	off := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}, MulticastSnooping: &off}
	if err := h.LinkAdd(br); err != nil {
		return fmt.Errorf("create bridge %s: %w", name, err)
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("bring up bridge %s: %w", name, err)
	}
	return nil
}
