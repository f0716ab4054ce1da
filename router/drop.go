package router

import (
	"errors"
	"fmt"
)

var errBadARP = errors.New("router: ARP is not Ethernet/IPv4")

// DropReason says why the router did not forward or answer a frame. Every
// reason is counted per NIC (Stats). DropNone means the frame was handled.
type DropReason uint8

// Drop reasons.
const (
	DropNone             DropReason = iota
	DropTruncated                   // shorter than its headers say
	DropNotOurMAC                   // unicast to another MAC (the BPF filter should have kept it out)
	DropEtherType                   // neither ARP nor IPv4
	DropBadARP                      // not Ethernet/IPv4 ARP, or an unknown opcode
	DropARPNotOwned                 // ARP request for an address we do not answer for (normal, not an error)
	DropARPConflict                 // someone else claims a VIP we own
	DropBadIPHeader                 // IPv4 header malformed
	DropBadIPChecksum               // IPv4 header checksum wrong
	DropMartianSource               // source is 0/8, 127/8, multicast, class E or limited broadcast
	DropMartianDest                 // destination is 0/8, 127/8 or class E
	DropBroadcast                   // L2 or IPv4 broadcast/multicast: not routed
	DropLocal                       // addressed to a primary address: the kernel owns it
	DropNoRoute                     // no route (ICMP destination unreachable sent)
	DropTTLExceeded                 // TTL expired in transit (ICMP time exceeded sent)
	DropTooBig                      // larger than the output MTU (ICMP fragmentation needed sent when DF)
	DropNeighQueueFull              // next hop unresolved and its queue (or the link's queue byte budget) full
	DropNeighUnresolved             // next hop did not answer ARP
	DropTx                          // the output device refused the frame, or was closed
	DropTUN                         // the TUN device refused the packet, or was closed
	DropICMPRateLimit               // an ICMP error was due but the rate limit held it back
	DropOwnFrame                    // a frame we sent ourselves, seen again
	DropFiltered                    // the stateful filter refused a forwarded packet (its Stats say why)
	DropLocalFiltered               // the stateful filter refused a packet to a VIP's local service
	DropNeighPendingFull            // next hop unresolved and the link already awaits Config.NeighPending others
	numDropReasons
)

var dropNames = [numDropReasons]string{
	DropNone:             "none",
	DropTruncated:        "truncated",
	DropNotOurMAC:        "not_our_mac",
	DropEtherType:        "ethertype",
	DropBadARP:           "bad_arp",
	DropARPNotOwned:      "arp_not_owned",
	DropARPConflict:      "arp_conflict",
	DropBadIPHeader:      "bad_ip_header",
	DropBadIPChecksum:    "bad_ip_checksum",
	DropMartianSource:    "martian_source",
	DropMartianDest:      "martian_dest",
	DropBroadcast:        "broadcast",
	DropLocal:            "local",
	DropNoRoute:          "no_route",
	DropTTLExceeded:      "ttl_exceeded",
	DropTooBig:           "too_big",
	DropNeighQueueFull:   "neigh_queue_full",
	DropNeighUnresolved:  "neigh_unresolved",
	DropTx:               "tx_error",
	DropTUN:              "tun_error",
	DropICMPRateLimit:    "icmp_rate_limit",
	DropOwnFrame:         "own_frame",
	DropFiltered:         "filtered",
	DropLocalFiltered:    "local_filtered",
	DropNeighPendingFull: "neigh_pending_full",
}

func (r DropReason) String() string {
	if r < numDropReasons {
		return dropNames[r]
	}
	return fmt.Sprintf("drop(%d)", uint8(r))
}

// DropReasons lists every reason except DropNone, in order (for metrics).
func DropReasons() []DropReason {
	rs := make([]DropReason, 0, numDropReasons-1)
	for r := DropNone + 1; r < numDropReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}
