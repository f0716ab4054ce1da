package workload

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestGapTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		name    string
		replies []int // ms after start
		end     int
		longest Gap
		listed  int // gaps >= 20 ms
	}{
		{"steady", []int{1, 2, 3, 4}, 4, Gap{From: ms(0), To: ms(1), Len: time.Millisecond}, 0},
		{"outage in the middle", []int{1, 2, 300, 301}, 301, Gap{From: ms(2), To: ms(300), Len: 298 * time.Millisecond}, 1},
		{"outage at the end counts to the end", []int{1, 2}, 500, Gap{From: ms(2), To: ms(500), Len: 498 * time.Millisecond}, 1},
		{"no replies at all", nil, 100, Gap{From: ms(0), To: ms(100), Len: 100 * time.Millisecond}, 1},
		{"slow start", []int{50, 51}, 51, Gap{From: ms(0), To: ms(50), Len: 50 * time.Millisecond}, 1},
		{"two outages, the longer wins", []int{1, 40, 41, 141, 142}, 142, Gap{From: ms(41), To: ms(141), Len: 100 * time.Millisecond}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGapTracker(t0, 20*time.Millisecond)
			for _, r := range tt.replies {
				g.observe(ms(r))
			}
			longest, gaps := g.finish(ms(tt.end))
			if d := cmp.Diff(tt.longest, longest); d != "" {
				t.Errorf("longest gap (-want +got):\n%s", d)
			}
			if len(gaps) != tt.listed {
				t.Errorf("listed gaps = %v, want %d", gaps, tt.listed)
			}
			// finish does not change the tracker: a later reply still counts.
			if tt.end > 0 {
				g2, _ := g.finish(ms(tt.end))
				if g2 != longest {
					t.Errorf("finish is not repeatable: %v then %v", longest, g2)
				}
			}
		})
	}
}

func TestGapTrackerFlowingSince(t *testing.T) {
	t0 := time.Unix(1000, 0)
	g := newGapTracker(t0, 20*time.Millisecond)
	for _, r := range []int{1, 2, 3, 100, 101, 102} {
		g.observe(t0.Add(time.Duration(r) * time.Millisecond))
	}
	if want := t0.Add(100 * time.Millisecond); !g.flowingSince.Equal(want) {
		t.Errorf("flowingSince = %v, want the first reply after the outage %v", g.flowingSince, want)
	}
}
