package forward

// State is a tracked flow's state. TCP states follow the kernel's
// conntrack (net/netfilter/nf_conntrack_proto_tcp.c) in spirit; UDP and
// ICMP echo have two and one.
type State uint8

// Flow states.
const (
	StateNone        State = iota
	StateSynSent           // TCP: the initiator's SYN seen
	StateSynRecv           // TCP: the responder's SYN-ACK seen
	StateEstablished       // TCP: the initiator acknowledged the SYN-ACK (or data flowed)
	StateFinWait           // TCP: one side sent FIN
	StateCloseWait         // TCP: the other side acknowledged that FIN; it may still send
	StateLastAck           // TCP: both sides sent FIN; waiting for the last ACK
	StateTimeWait          // TCP: closed in order
	StateClose             // TCP: reset
	StateUnreplied         // UDP: only the initiator has sent
	StateAssured           // UDP: the responder answered
	StateICMP              // ICMP echo
	numStates
)

var stateNames = [numStates]string{
	StateNone: "none", StateSynSent: "syn_sent", StateSynRecv: "syn_recv", StateEstablished: "established",
	StateFinWait: "fin_wait", StateCloseWait: "close_wait", StateLastAck: "last_ack", StateTimeWait: "time_wait",
	StateClose: "close", StateUnreplied: "unreplied", StateAssured: "assured", StateICMP: "icmp",
}

func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "state(?)"
}

// States returns every state a flow can be in, for metrics.
func States() []State {
	out := make([]State, 0, numStates-1)
	for s := StateSynSent; s < numStates; s++ {
		out = append(out, s)
	}
	return out
}

// tcpNext returns a TCP flow's state after a packet with flags, sent by the
// flow's initiator (orig) or its responder. finOrig says the first FIN
// came from the initiator (meaningful from StateFinWait on). The
// tracker is liberal, as a gateway that may take a flow over mid-way must
// be: every packet of a tracked flow passes; the state only picks the
// timeout and recognises a new connection reusing a closed one's ports.
func tcpNext(s State, orig bool, flags uint8, finOrig bool) State {
	syn, ack, fin := flags&tcpSYN != 0, flags&tcpACK != 0, flags&tcpFIN != 0
	if flags&tcpRST != 0 {
		return StateClose
	}
	switch s {
	case StateSynSent:
		if !orig && syn && ack {
			return StateSynRecv
		}
	case StateSynRecv:
		if orig && ack && !syn {
			if fin {
				return StateFinWait
			}
			return StateEstablished
		}
	case StateEstablished:
		if fin {
			return StateFinWait
		}
	case StateFinWait:
		switch {
		case fin && orig != finOrig:
			return StateLastAck
		case ack && orig != finOrig:
			return StateCloseWait
		}
	case StateCloseWait:
		if fin && orig != finOrig {
			return StateLastAck
		}
	case StateLastAck:
		// Both have sent FIN: an ACK ends it. The last ACK comes from
		// whichever side sent the first FIN; either is accepted.
		if ack && !fin {
			return StateTimeWait
		}
	case StateTimeWait, StateClose:
		if orig && syn && !ack {
			return StateSynSent // a new connection on the same ports
		}
	}
	return s
}
