package ringtest

import (
	"strings"
	"testing"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ringstate"
	"github.com/ringway/ringway/vipstate"
)

// The invariant checks must catch a broken Holder: these run the simulator
// with deliberately wrong holders and expect the matching violation.
func TestCheckerCatchesBrokenHolders(t *testing.T) {
	for _, tc := range []struct {
		name   string
		holder func(id ring.NodeID, real ring.Holder) ring.Holder
		want   string
	}{
		{
			// Ignores failures: the dead node's VIPs stay on it.
			name: "no fail-over",
			holder: func(id ring.NodeID, real ring.Holder) ring.Holder {
				return ring.HolderFunc(func(v ring.TokenView) []ring.Carriage {
					if len(v.Dropped) > 0 {
						return v.Carriages
					}
					return real.OnToken(v).Carriages
				})
			},
			want: "not a member",
		},
		{
			// Node 2 takes every VIP whenever it holds the token, without
			// its owners giving them up first.
			name: "grab",
			holder: func(id ring.NodeID, real ring.Holder) ring.Holder {
				return ring.HolderFunc(func(v ring.TokenView) []ring.Carriage {
					cs := real.OnToken(v).Carriages
					if v.Self != 2 || v.Alone {
						return cs
					}
					tb, _, _ := ringstate.Table(cs)
					rows := tb.Rows()
					for i := range rows {
						rows[i].Current = 2
					}
					tb, err := vipstate.New(tb.Nodes(), rows)
					if err != nil {
						panic(err)
					}
					b, _ := tb.MarshalBinary()
					return []ring.Carriage{{Kind: ringstate.KindVIPTable, Data: b}}
				})
			},
			want: "two owners",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Options{Seed: 5, N: 3, Paths: 2, Link: LAN, Holder: tc.holder})
			s.StartAll()
			s.RunTicks(300)
			s.Crash(3)
			s.RunTicks(300)
			if err := s.Err(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if !strings.Contains(s.Err().Error(), "replay: ") {
				t.Errorf("failure lacks the replay command: %v", s.Err())
			}
		})
	}
}

// A seed replays exactly: the same transcript twice.
func TestReplayDeterministic(t *testing.T) {
	a, errA := RandomScenario(77, "%d")
	b, errB := RandomScenario(77, "%d")
	if (errA == nil) != (errB == nil) {
		t.Fatalf("errors differ: %v / %v", errA, errB)
	}
	ta, tb := strings.Join(a.Transcript(), "\n"), strings.Join(b.Transcript(), "\n")
	if ta != tb {
		t.Fatal("two runs of seed 77 produced different transcripts")
	}
	if len(a.Transcript()) < 10 {
		t.Fatalf("transcript too short to mean anything: %d lines", len(a.Transcript()))
	}
}

// A second token (a forgery past authentication, standing in for a core
// bug) is caught as two valid tokens in one ring.
func TestCheckerCatchesSecondToken(t *testing.T) {
	s := New(Options{Seed: 5, N: 3, Paths: 2, Link: LAN})
	s.StartAll()
	s.RunTicks(300)
	s.RunUntil(func() bool { return s.Holding() == 1 }, 100_000)
	st, _ := s.Status(1)
	body, _ := (&ring.Message{Kind: ring.MsgToken, RingID: st.RingID, Seq: st.MaxSeq + 1000, Sender: 2, Dest: 3,
		Members: []ring.NodeID{1, 2, 3}}).MarshalBinary()
	frame, _ := ring.Frame{Type: ring.FrameData, MsgID: 99, Count: 1, Payload: body}.MarshalBinary()
	s.Inject(2, 3, frame)
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "two valid tokens") {
		t.Fatalf("error %v, want two valid tokens", err)
	}
}
