package ringtest

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ringstate"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden transcripts in testdata/")

// golden runs a scenario and compares its transcript with testdata/name.txt.
func golden(t *testing.T, name string, n int, body func(t *testing.T, s *Sim)) {
	t.Helper()
	s := New(Options{Seed: 42, N: n, Paths: 2, VIPs: 6, Link: LAN, Trace: true, TraceTokens: name == "cold-start",
		Replay: "go test ./ring/ringtest -run TestGolden/" + name + " -v # seed %d"})
	body(t, s)
	if err := s.Err(); err != nil {
		t.Fatalf("%v\n%s", err, FormatTranscript(s, 60))
	}
	got := strings.Join(s.Transcript(), "\n") + "\n"
	path := filepath.Join("testdata", name+".txt")
	if *rewrite {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -rewrite to create it)", err)
	}
	if string(want) != got {
		t.Errorf("transcript differs from %s (run with -rewrite after checking the change):\n--- got\n%s", path, got)
	}
}

func converge(t *testing.T, s *Sim) {
	t.Helper()
	if _, ok := s.RunUntilConverged(MergeBound(s.Config())); !ok {
		t.Fatalf("not converged: %v\n%s", s.Converged(), FormatTranscript(s, 40))
	}
	s.LogOwners()
}

func TestGolden(t *testing.T) {
	t.Run("cold-start", func(t *testing.T) {
		golden(t, "cold-start", 3, func(t *testing.T, s *Sim) {
			s.StartAll()
			converge(t, s)
			s.RunTicks(12) // two more rotations, token hops traced
		})
	})
	t.Run("crash-non-holder", func(t *testing.T) {
		golden(t, "crash-non-holder", 3, func(t *testing.T, s *Sim) {
			s.StartAll()
			converge(t, s)
			// Crash n2 while n3 holds the token: n1 finds out when its hop to n2 fails.
			s.RunUntil(func() bool { return s.Holding() == 3 }, 100_000)
			s.Crash(2)
			converge(t, s)
			if r := s.Stats().Regenerations; r != 0 {
				t.Errorf("%d regenerations, want 0: a non-holder's crash is a failed hop", r)
			}
		})
	})
	t.Run("crash-holder", func(t *testing.T) {
		golden(t, "crash-holder", 3, func(t *testing.T, s *Sim) {
			s.StartAll()
			converge(t, s)
			s.RunUntil(func() bool { return s.Holding() == 2 }, 100_000)
			s.Crash(2)
			converge(t, s)
			if r := s.Stats().Regenerations; r != 1 {
				t.Errorf("%d regenerations after the holder crashed, want exactly 1", r)
			}
		})
	})
	t.Run("slow-node", func(t *testing.T) {
		golden(t, "slow-node", 3, func(t *testing.T, s *Sim) {
			s.StartAll()
			converge(t, s)
			// n3 stalls (a long GC pause) for a rotation and the ack budget: n2
			// drops it when the token next tries to reach it.
			s.RunUntil(func() bool { return s.Holding() == 1 }, 100_000)
			s.Pause(3)
			s.RunTicks(s.Config().Rotation() + s.Config().AckBudget() + 12)
			s.LogOwners()
			s.Resume(3)
			converge(t, s)
		})
	})
	t.Run("join", func(t *testing.T) {
		golden(t, "join", 3, func(t *testing.T, s *Sim) {
			s.Start(1)
			s.Start(2)
			s.RunTicks(2 * s.Config().JoinTimeout)
			s.LogOwners()
			s.Start(3)
			converge(t, s)
		})
	})
	t.Run("leave", func(t *testing.T) {
		golden(t, "leave", 3, func(t *testing.T, s *Sim) {
			s.StartAll()
			converge(t, s)
			s.Leave(1)
			s.RunUntil(func() bool { _, up := s.Status(1); return !up }, 200_000)
			converge(t, s)
			if _, up := s.Status(1); up {
				t.Error("n1 still running after its leave")
			}
			var drops uint64
			for _, id := range s.Up() {
				st, _ := s.Status(id)
				drops += st.Counters.Drops
			}
			if drops != 0 {
				t.Errorf("%d drops during a graceful leave, want 0", drops)
			}
		})
	})
	t.Run("partition-merge", func(t *testing.T) {
		golden(t, "partition-merge", 5, func(t *testing.T, s *Sim) {
			s.StartAll()
			converge(t, s)
			s.Partition([]ring.NodeID{1, 2}, []ring.NodeID{3, 4, 5})
			s.RunTicks(150)
			s.LogOwners()
			s.Heal()
			converge(t, s)
		})
	})
	t.Run("admin-move", func(t *testing.T) {
		golden(t, "admin-move", 3, func(t *testing.T, s *Sim) {
			s.StartAll()
			converge(t, s)
			// The operator, talking to n2, moves n1's first VIP to n3. n2
			// applies the move at its turn (the event says so), but the VIP
			// moves only at n1's turn: n1 answers it until it gives it away.
			vip := s.VIPs()[0]
			if o := s.Owners()[vip]; len(o) != 1 || o[0] != 1 {
				t.Fatalf("VIP %v on %v before the move, want n1", vip, o)
			}
			s.VIPOp(2, ringstate.VIPOp{Action: ringstate.VIPMove, VIP: vip, Node: 3})
			s.RunUntil(func() bool { o := s.Owners()[vip]; return len(o) == 1 && o[0] == 3 }, 200_000)
			converge(t, s)
			if o := s.Owners()[vip]; len(o) != 1 || o[0] != 3 {
				t.Errorf("VIP %v on %v after the move, want n3", vip, o)
			}
		})
	})
	t.Run("monitor-unhealthy", func(t *testing.T) {
		golden(t, "monitor-unhealthy", 3, func(t *testing.T, s *Sim) {
			s.StartAll()
			converge(t, s)
			// n1's monitor fails: at its next turn n1 marks itself unhealthy
			// on the token and hands its VIPs over; it stays in the ring.
			s.SetHealthy(1, false)
			converge(t, s)
			for vip, o := range s.Owners() {
				if len(o) == 1 && o[0] == 1 {
					t.Errorf("unhealthy n1 still answers %v", vip)
				}
			}
			if st, _ := s.Status(1); st.Mode != ring.ModeMember {
				t.Errorf("unhealthy n1 is %v, want still a member", st.Mode)
			}
			// Healthy again: the mark goes at its next turn.
			s.SetHealthy(1, true)
			converge(t, s)
		})
	})
	t.Run("balance", func(t *testing.T) {
		golden(t, "balance", 3, func(t *testing.T, s *Sim) {
			s.StartAll()
			converge(t, s)
			// Traffic lands on n1's VIPs only: balancing moves one of them
			// to a less loaded node.
			load := ringstate.Load{}
			var mine []netip.Addr
			for vip, o := range s.Owners() {
				if o[0] == 1 {
					load[vip] = 100_000_000
					mine = append(mine, vip)
				}
			}
			s.SetLoad(load)
			moved := func() bool {
				for _, vip := range mine {
					if o := s.Owners()[vip]; len(o) == 1 && o[0] != 1 {
						return true
					}
				}
				return false
			}
			s.RunUntil(moved, 2_000_000)
			s.LogOwners()
			if !moved() {
				t.Error("no loaded VIP left n1 in 2 s")
			}
		})
	})
}
