package forward

// Reason says why the filter dropped a packet; ReasonNone means it passed.
// Every reason is counted (Stats.Drops) and exported as a metric label.
type Reason uint8

// Drop reasons.
const (
	ReasonNone           Reason = iota
	ReasonMalformed             // IPv4 or L4 header too short or inconsistent
	ReasonRule                  // the first packet of a flow was refused by a rule or the default
	ReasonNoState               // not a valid first packet and no flow: mid-flow TCP, an echo reply nobody asked for
	ReasonRelated               // an ICMP error quoting no tracked flow
	ReasonFragment              // a non-first fragment whose first fragment was not seen (or was dropped)
	ReasonTableFull             // a new flow while the table holds MaxFlows
	ReasonFragFull              // a first fragment while the fragment tracker is full
	ReasonSpoofSubnet           // source belongs to another connected subnet than the input link's
	ReasonSpoofVIP              // source is a VIP or one of this node's addresses
	ReasonSpoofMartian          // source in 0/8, 127/8, 169.254/16, 224/4 or 240/4
	ReasonSpoofBroadcast        // source is a connected subnet's broadcast address
	ReasonLocal                 // to a VIP, for a service filter.local does not list
	ReasonNoHandler             // came through the tunnel, no flow here and no handler known for it (symmetric.go)
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonNone: "none", ReasonMalformed: "malformed", ReasonRule: "rule", ReasonNoState: "no_state",
	ReasonRelated: "unrelated_icmp", ReasonFragment: "fragment", ReasonTableFull: "table_full",
	ReasonFragFull: "fragment_table_full", ReasonSpoofSubnet: "spoofed_subnet", ReasonSpoofVIP: "spoofed_vip",
	ReasonSpoofMartian: "spoofed_martian", ReasonSpoofBroadcast: "spoofed_broadcast", ReasonLocal: "local_not_allowed",
	ReasonNoHandler: "no_handler",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "reason(?)"
}

// Reasons returns every drop reason, for metrics.
func Reasons() []Reason {
	rs := make([]Reason, 0, numReasons-1)
	for r := ReasonNone + 1; r < numReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}
