package ring

import "testing"

// resendAfter sends a hello to node 2 and reports after how many ticks
// its first resend goes out.
func resendAfter(t *testing.T, n *Node) int {
	t.Helper()
	n.Ready()
	id := n.send(2, &Message{Kind: MsgHello, Purpose: PurposeProbe}, sendTag{kind: MsgHello})
	n.Ready()
	for k := 1; k <= 200; k++ {
		n.Tick()
		for _, p := range n.Ready().Packets {
			var f Frame
			if f.UnmarshalBinary(p.Data) == nil && f.Type == FrameData && f.MsgID == id {
				n.cancel(id)
				return k
			}
		}
	}
	t.Fatal("no resend within 200 ticks")
	return 0
}

// timed sends hellos to node 2 acked after rtt ticks, k times.
func timed(t *testing.T, n *Node, rtt, k int) {
	t.Helper()
	for range k {
		id := n.send(2, &Message{Kind: MsgHello, Purpose: PurposeProbe}, sendTag{kind: MsgHello})
		for range rtt {
			n.Tick()
		}
		b, _ := Frame{Type: FrameAck, MsgID: id}.AppendBinary(nil)
		if err := n.Step(2, 0, b); err != nil {
			t.Fatal(err)
		}
		n.Ready()
	}
}

func TestAdaptiveAckTimeout(t *testing.T) {
	c := TestConfig() // AckTimeout 2 ticks
	newNode := func() *Node {
		n, err := NewNode(c)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	n := newNode()
	if got := resendAfter(t, n); got != 2*unmeasuredFactor {
		t.Errorf("peer never timed: first resend after %d ticks, want %d", got, 2*unmeasuredFactor)
	}
	timed(t, n, 0, 20)
	if got := resendAfter(t, n); got != 2 {
		t.Errorf("peer answering within the tick: first resend after %d ticks, want AckTimeout (2)", got)
	}
	// A peer whose process runs late: acks after 6 ticks. Its timeout
	// widens beyond the sample, so its hops stop failing.
	timed(t, n, 6, 30)
	if got := resendAfter(t, n); got <= 6 || got > 2*maxRTOFactor {
		t.Errorf("peer acking after 6 ticks: first resend after %d ticks, want 7..%d", got, 2*maxRTOFactor)
	}
	// However slow, capped.
	timed(t, n, 30, 10)
	if got := resendAfter(t, n); got != 2*maxRTOFactor {
		t.Errorf("peer acking after 30 ticks: first resend after %d ticks, want the cap %d", got, 2*maxRTOFactor)
	}

	// Local health: a node that was itself stalled widens its timeouts,
	// and a healthy second brings them back.
	n = newNode()
	timed(t, n, 0, 20)
	n.Lag(10)
	if got := resendAfter(t, n); got != 4 {
		t.Errorf("after one stall: first resend after %d ticks, want 2 × AckTimeout", got)
	}
	for range healthyTicks {
		n.Tick()
	}
	if got := resendAfter(t, n); got != 2 {
		t.Errorf("a healthy second after the stall: first resend after %d ticks, want AckTimeout", got)
	}

	// Fixed timers: none of it.
	c.FixedTimers = true
	n = newNode()
	timed(t, n, 6, 30)
	n.Lag(10)
	if got := resendAfter(t, n); got != 2 {
		t.Errorf("fixed timers: first resend after %d ticks, want AckTimeout", got)
	}
}

// TestLagPostponesTimeouts: a hop whose failure falls due during a stall
// of the node's own process is not failed by the tick that ends the stall
// (its ack may be waiting, unread, in the socket), but a tick later.
func TestLagPostponesTimeouts(t *testing.T) {
	c := TestConfig()
	for _, lag := range []bool{false, true} {
		n, err := NewNode(c)
		if err != nil {
			t.Fatal(err)
		}
		timed(t, n, 0, 20)
		id := n.send(2, &Message{Kind: MsgHello, Purpose: PurposeProbe}, sendTag{kind: MsgHello})
		pending := func() bool {
			for _, o := range n.rl.out {
				if o.id == id {
					return true
				}
			}
			return false
		}
		for range c.AckBudget() - 1 {
			n.Tick()
		}
		if lag {
			n.Lag(c.AckBudget()) // the process slept through the rest of the budget and more
		}
		n.Tick()
		if got := pending(); got != lag {
			t.Errorf("lag %v: hop still pending after the budget's last tick: %v, want %v", lag, got, lag)
		}
		if !lag {
			continue
		}
		b, _ := Frame{Type: FrameAck, MsgID: id}.AppendBinary(nil)
		if err := n.Step(2, 0, b); err != nil { // the ack, read after the stall
			t.Fatal(err)
		}
		if pending() || n.counters.LateAcks != 0 {
			t.Errorf("the ack read after the stall did not complete the hop (late acks %d)", n.counters.LateAcks)
		}
	}
}
