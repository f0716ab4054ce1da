package forward

import (
	"testing"

	"pgregory.net/rapid"
)

// tcpModel is the obviously right description of a TCP flow's life, kept
// as facts about what has been seen rather than as a state machine: the
// state is read off the facts at the end. Each fact counts only in the
// order a real connection produces it (a SYN-ACK after the SYN, ...).
type tcpModel struct {
	synAck, established bool
	fin                 [2]bool // [0] initiator, [1] responder
	finFirst            int     // who sent the first FIN
	ackedFin, lastAck   bool
	reset               bool
}

func (m *tcpModel) step(orig bool, flags uint8) {
	d := 1
	if orig {
		d = 0
	}
	syn, ack, fin := flags&tcpSYN != 0, flags&tcpACK != 0, flags&tcpFIN != 0
	closed := m.reset || m.lastAck
	switch {
	case flags&tcpRST != 0:
		*m = tcpModel{reset: true}
	case closed && orig && syn && !ack:
		*m = tcpModel{} // a new connection on the same ports
	case closed:
	case !m.synAck:
		m.synAck = !orig && syn && ack
	case !m.established:
		if orig && ack && !syn {
			m.established = true
			if fin {
				m.fin[0], m.finFirst = true, 0
			}
		}
	case !m.fin[0] && !m.fin[1]:
		if fin {
			m.fin[d], m.finFirst = true, d
		}
	case m.fin[0] != m.fin[1]: // one side closed
		other := 1 - m.finFirst
		switch {
		case d == other && fin:
			m.fin[d] = true
		case d == other && ack:
			m.ackedFin = true
		}
	default: // both closed
		if ack && !fin {
			m.lastAck = true
		}
	}
}

func (m *tcpModel) state() State {
	switch {
	case m.reset:
		return StateClose
	case m.lastAck:
		return StateTimeWait
	case m.fin[0] && m.fin[1]:
		return StateLastAck
	case (m.fin[0] || m.fin[1]) && m.ackedFin:
		return StateCloseWait
	case m.fin[0] || m.fin[1]:
		return StateFinWait
	case m.established:
		return StateEstablished
	case m.synAck:
		return StateSynRecv
	}
	return StateSynSent
}

// The filter's TCP tracking agrees with the model over random packet
// sequences, and every packet of a tracked flow passes (the tracker is
// liberal: it only chooses timeouts).
func TestTCPAgainstModel(t *testing.T) {
	flagSets := []uint8{tcpSYN, tcpSYN | tcpACK, tcpACK, tcpFIN | tcpACK, tcpFIN, tcpRST, tcpRST | tcpACK, tcpACK | 0x08}
	rapid.Check(t, func(t *rapid.T) {
		f, err := New(labConfig())
		if err != nil {
			t.Fatal(err)
		}
		if r := f.Forward(tcp(client, server, 40000, 80, tcpSYN), ext, int_, 0); r != ReasonNone {
			t.Fatalf("SYN: %v", r)
		}
		var m tcpModel
		n := rapid.IntRange(1, 30).Draw(t, "n")
		for i := range n {
			orig := rapid.Bool().Draw(t, "orig")
			flags := rapid.SampledFrom(flagSets).Draw(t, "flags")
			var p []byte
			in, out := ext, int_
			if orig {
				p = tcp(client, server, 40000, 80, flags)
			} else {
				p = tcp(server, client, 80, 40000, flags)
				in, out = int_, ext
			}
			if r := f.Forward(p, in, out, int64(i+1)); r != ReasonNone {
				t.Fatalf("packet %d (orig %v flags %#x) of a tracked flow dropped: %v", i, orig, flags, r)
			}
			m.step(orig, flags)
			fl := f.Flows(int64(i+1), 0)
			if len(fl) != 1 {
				t.Fatalf("%d flows, want 1", len(fl))
			}
			if got, want := fl[0].State, m.state(); got != want {
				t.Fatalf("after packet %d (orig %v flags %#x): state %v, model says %v", i, orig, flags, got, want)
			}
		}
	})
}
