package node

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ringway/ringway/mgmt"
)

// A membership change is logged once at info with its cause, at the node
// that made it and at the one that learnt it from the token, and the
// status lists it.
func TestMembershipEventsLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, fastRing, nil)
		n1, n2 := c.node(1), c.node(2)
		n1.signal()
		if _, err := n1.wait(t, testLeaveTimeout+testDrain+time.Second); err != nil {
			t.Fatalf("Run after a graceful leave = %v, want nil", err)
		}
		c.waitFor(time.Second, "node 2 logs node 1's leave", func() bool {
			return n2.logs.has(slog.LevelInfo, "cause=n1 left gracefully")
		})
		if got := n2.logs.count(slog.LevelInfo, "cause=n1 left gracefully"); got != 1 {
			t.Errorf("node 2 logged the leave %d times at info, want once:\n%s", got, n2.logs)
		}
		// The formation: one info line with its cause at each node.
		for _, tn := range []*testNode{n1, n2} {
			if got := tn.logs.count(slog.LevelInfo, "formed the ring"); got != 1 {
				t.Errorf("node %d logged the formation %d times at info, want once:\n%s", tn.self, got, tn.logs)
			}
		}
		evs := n2.Status().Events
		if len(evs) < 2 {
			t.Fatalf("status events %+v, want the formation and the leave", evs)
		}
		last := evs[len(evs)-1]
		if last.Kind != "left" || last.Node != "n1" || last.By != "n1" || !last.Learnt ||
			last.Cause != "n1 left gracefully" || strings.Join(last.Members, " ") != "n2" || last.Time.IsZero() {
			t.Errorf("last status event %+v, want n1 left gracefully, learnt, members n2", last)
		}
	})
}

func TestMembershipLogBounded(t *testing.T) {
	var l membershipLog
	if l.list() != nil {
		t.Fatal("an empty log lists events")
	}
	for i := range maxMembershipEvents + 5 {
		l.add(mgmt.MembershipEvent{Cause: fmt.Sprint(i)})
	}
	got := l.list()
	if len(got) != maxMembershipEvents || got[0].Cause != "5" || got[len(got)-1].Cause != fmt.Sprint(maxMembershipEvents+4) {
		t.Errorf("after %d adds: %d events from %q to %q, want the last %d oldest first",
			maxMembershipEvents+5, len(got), got[0].Cause, got[len(got)-1].Cause, maxMembershipEvents)
	}
}
