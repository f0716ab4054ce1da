package ring

import "testing"

// A member of a majority ring that was not run for longer than its lease
// (SIGSTOP, a long stall: Lag) serves nothing when it runs again, until a
// token renews the lease; a short stall changes nothing.
func TestLagCountsAgainstLease(t *testing.T) {
	for _, tc := range []struct {
		lag     func(n *Node) int
		suspend bool
	}{
		{func(n *Node) int { return 1 }, false},
		{func(n *Node) int { return int(n.lease()) + 1 }, true},
	} {
		cfg := TestConfig()
		cfg.Quorum = Majority
		n, err := NewNode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		n.mode = ModeMember
		n.tok = Message{Kind: MsgToken, RingID: 9, Seq: 5, Members: []NodeID{1, 2, 3}, Sender: 3, Dest: 1}
		n.maxSeq = 5
		n.lastSeen, n.leaseAt = n.now, n.now
		n.Lag(tc.lag(n))
		n.Tick()
		st := n.Ready().State
		if got := st != nil && st.NoQuorum; got != tc.suspend {
			t.Errorf("lag %d of a %d-tick lease: suspended %v (state %+v), want %v", tc.lag(n), n.lease(), got, st, tc.suspend)
		}
	}
}
