// Command benchring is the simulator half of `make bench-ring`: it measures
// the ring protocol in ring/ringtest at default timers and prints a table
// and JSON rows (docs/ring.md, "Benchmark rows"). Simulated time: one tick
// is ring.TickMillis (2 ms); LAN links delay each datagram 0.1-0.5 ms.
//
//   - crash_to_membership: N nodes converge, run a random fraction of a
//     rotation more, one random node crashes; the time until every
//     survivor has committed a state whose members are exactly the
//     survivors. p50/p99/max over -trials per N.
//   - regenerations_per_holder_crash: in those trials, the regenerations
//     that followed each crash of the node holding the token (must be 1)
//     and of any other node (must be 0).
//   - token_bytes_per_hop: data-frame bytes on one path per token hop in
//     steady state (3 nodes), with 8 and with 1,024 VIPs.
//   - false_removals: drops, 911s and regenerations over -hops token hops
//     of 3 healthy nodes with 5 % loss on one of two paths (target 0);
//     the same with 5 % loss on both paths as a stress figure.
//   - heal_to_one_ring: 8 nodes split in two random halves for 1 s, healed;
//     the time until one ring with exactly one owner per VIP.
//
// With -udp FILE it merges the real-UDP rows of ringnetbench into -out.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"github.com/ringway/ringway/ring/internal/benchrow"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ring/ringtest"
)

// Row is one JSON result row (docs/ring.md, "Benchmark rows").
type Row = benchrow.Row

func main() {
	var (
		ns      = flag.String("n", "3,8,32,64", "cluster sizes for crash_to_membership")
		trials  = flag.String("trials", "1000,500,200,100", "crashes per cluster size")
		hops    = flag.Int("hops", 1_000_000, "token hops for false_removals")
		heals   = flag.Int("heals", 200, "partition heals for heal_to_one_ring")
		holders = flag.Int("holder-crashes", 200, "crashes of the token holder per N (3, 8, 32) for regenerations_per_holder_crash")
		udp     = flag.String("udp", "", "real-UDP rows from ringnetbench to merge (optional)")
		out     = flag.String("out", "bench/out/ring.json", "JSON rows file (\"\" to skip)")
		timerFl = flag.String("timers", "", "override timers in ticks: hop,minRotation,ackTimeout,ackRetries,tokenLoss,joinTimeout (tuning)")
		quorum  = flag.String("quorum", "availability", "quorum mode of every node: availability or majority")
	)
	flag.Parse()
	q := ring.Availability
	switch *quorum {
	case "availability":
	case "majority":
		q = ring.Majority
	default:
		fatalf("-quorum is availability or majority, not %q", *quorum)
	}
	tune := func(c *ring.Config) { c.Quorum = q }
	if *timerFl != "" {
		v := ints(*timerFl)
		if len(v) != 6 {
			fatalf("-timers wants 6 numbers: hop,minRotation,ackTimeout,ackRetries,tokenLoss,joinTimeout")
		}
		tune = func(c *ring.Config) {
			c.Quorum = q
			c.HopInterval, c.MinRotation, c.AckTimeout, c.AckRetries, c.TokenLoss, c.JoinTimeout = v[0], v[1], v[2], v[3], v[4], v[5]
		}
	}
	c := ring.DefaultConfig()
	tune(&c)
	fmt.Printf("timers (ticks of %d ms): hop %d, min rotation %d (hold %d at N=3, %d at N=32), ack timeout %d, ack retries %d (budget %d), token loss %s, join %d, probe %d\n",
		ring.TickMillis, c.HopInterval, c.MinRotation, c.Hold(3), c.Hold(32), c.AckTimeout, c.AckRetries, c.AckBudget(), tokenLoss(c), c.JoinTimeout, c.ProbeInterval)

	var rows []Row
	sizes, tr := ints(*ns), ints(*trials)
	for i, n := range sizes {
		k := tr[min(i, len(tr)-1)]
		rows = append(rows, crashes(n, k, tune)...)
	}
	for _, n := range []int{3, 8, 32} {
		rows = append(rows, holderCrashes(n, *holders, tune)...)
	}
	rows = append(rows, tokenBytes(8, tune), tokenBytes(1024, tune))
	rows = append(rows, falseRemovals(*hops, false, tune), falseRemovals(*hops/10, true, tune))
	rows = append(rows, healRow(8, *heals, tune))
	la := benchrow.LoadAvg()
	for i := range rows {
		rows[i].Source, rows[i].LoadAvg, rows[i].Cores = "sim", la, runtime.NumCPU()
	}
	if *udp != "" {
		b, err := os.ReadFile(*udp)
		if err != nil {
			fmt.Fprintf(os.Stderr, "benchring: no real-UDP rows merged: %v\n", err)
		} else {
			var u []Row
			if err := json.Unmarshal(b, &u); err != nil {
				fatalf("read %s: %v", *udp, err)
			}
			rows = append(rows, u...)
		}
	}
	printTable(rows)
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			fatalf("%v", err)
		}
		b, _ := json.MarshalIndent(rows, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			fatalf("%v", err)
		}
		fmt.Printf("wrote %s\n", *out)
	}
}

func tokenLoss(c ring.Config) string {
	if c.TokenLoss > 0 {
		return strconv.Itoa(c.TokenLoss)
	}
	return fmt.Sprintf("auto (%d at N=3, %d at N=32)", with(c, 3).TokenLossTicks(), with(c, 32).TokenLossTicks())
}

func with(c ring.Config, n int) ring.Config {
	c.Nodes = make([]ring.NodeID, n)
	return c
}

// settle is how long a trial runs after the ring converged before the crash
// time is drawn: two rotations. The rotation that makes a new membership
// known goes without holds, so a crash drawn inside it would over-sample
// that rotation; a holder crash there is repaired in up to token loss + the
// 911 window (docs/ring.md), a hold later than in steady state.
func settle(s *ringtest.Sim) int64 { return 2 * int64(s.Config().Rotation()) * ringtest.TickUS }

// crashes measures crash_to_membership and regenerations for n nodes.
func crashes(n, trials int, tune func(*ring.Config)) []Row {
	var ms []float64
	fails, holderCrashes, badHolder, otherRegen := 0, 0, 0, 0
	for t := 0; t < trials; t++ {
		s := ringtest.New(ringtest.Options{Seed: uint64(1000*n + t), N: n, Paths: 2, Link: ringtest.LAN, NoChecks: true, Ring: tune})
		s.StartAll()
		if _, ok := s.RunUntilConverged(10_000_000); !ok {
			fails++
			continue
		}
		rot := int64(s.Config().Rotation()) * ringtest.TickUS
		s.Run(settle(s) + s.Rand().Int64N(rot) + 1)
		victim := ring.NodeID(1 + s.Rand().IntN(n))
		st, _ := s.Status(victim)
		holder := st.Holding
		var survivors []ring.NodeID
		for _, id := range s.Up() {
			if id != victim {
				survivors = append(survivors, id)
			}
		}
		regen0 := s.Stats().Regenerations
		start := s.Now()
		done := int64(-1)
		s.OnState = func(at int64, _ ring.NodeID, _ *ring.State) {
			if done >= 0 {
				return
			}
			for _, id := range survivors {
				if st := s.State(id); st == nil || !slices.Equal(st.Members, survivors) {
					return
				}
			}
			done = at
		}
		s.Crash(victim)
		s.RunUntil(func() bool { return done >= 0 }, 10_000_000)
		if done < 0 {
			fails++
			continue
		}
		// Let any late 911 play out before counting regenerations.
		s.Run(int64(3*s.Config().TokenLossTicks()) * ringtest.TickUS)
		regen := s.Stats().Regenerations - regen0
		if holder {
			holderCrashes++
			if regen != 1 {
				badHolder++
			}
		} else if regen != 0 {
			otherRegen++
		}
		ms = append(ms, float64(done-start)/1000)
	}
	target := ""
	switch n {
	case 3:
		target = "p99 <= 100"
	case 32:
		target = "p99 <= 500"
	}
	r := summary("crash_to_membership", n, "ms", ms, fails, target)
	if target != "" {
		lim := 100.0
		if n == 32 {
			lim = 500
		}
		r.Pass = ptr(fails == 0 && r.P99 <= lim)
	}
	rg := Row{Metric: "regenerations_random_crash", N: n, Unit: "count", Value: 1, Samples: holderCrashes,
		Fail: badHolder, Target: "exactly 1", Pass: ptr(badHolder == 0 && otherRegen == 0),
		Note: fmt.Sprintf("%d holder crashes with a regeneration count other than 1; %d other crashes with any regeneration", badHolder, otherRegen)}
	if badHolder > 0 {
		rg.Value = 0
	}
	return []Row{r, rg}
}

// holderCrashes crashes the node holding the token, every time: the 911
// path. It reports the time to the new membership at all survivors and
// how many regenerations followed (exactly one each time).
func holderCrashes(n, trials int, tune func(*ring.Config)) []Row {
	var ms []float64
	fails, bad := 0, 0
	var counts []int
	for t := 0; t < trials; t++ {
		s := ringtest.New(ringtest.Options{Seed: uint64(9000*n + t), N: n, Paths: 2, Link: ringtest.LAN, NoChecks: n > 8, Ring: tune})
		s.StartAll()
		if _, ok := s.RunUntilConverged(10_000_000); !ok {
			fails++
			continue
		}
		s.Run(settle(s) + s.Rand().Int64N(int64(s.Config().Rotation())*ringtest.TickUS) + 1)
		var victim ring.NodeID
		s.RunUntil(func() bool { victim = s.Holding(); return victim != 0 }, 1_000_000)
		if victim == 0 {
			fails++
			continue
		}
		var survivors []ring.NodeID
		for _, id := range s.Up() {
			if id != victim {
				survivors = append(survivors, id)
			}
		}
		regen0 := s.Stats().Regenerations
		start, done := s.Now(), int64(-1)
		s.OnState = func(at int64, _ ring.NodeID, _ *ring.State) {
			if done >= 0 {
				return
			}
			for _, id := range survivors {
				if st := s.State(id); st == nil || !slices.Equal(st.Members, survivors) {
					return
				}
			}
			done = at
		}
		s.Crash(victim)
		s.RunUntil(func() bool { return done >= 0 }, 10_000_000)
		s.Run(int64(3*s.Config().TokenLossTicks()) * ringtest.TickUS)
		if done < 0 || s.Err() != nil {
			fails++
			continue
		}
		regen := int(s.Stats().Regenerations - regen0)
		counts = append(counts, regen)
		if regen != 1 {
			bad++
		}
		ms = append(ms, float64(done-start)/1000)
	}
	r := summary("crash_holder_to_membership", n, "ms", ms, fails, "")
	r.Note = "the token holder crashes: 911 and regeneration"
	slices.Sort(counts)
	g := Row{Metric: "regenerations_per_holder_crash", N: n, Unit: "count", Samples: len(counts), Fail: bad + fails,
		Target: "exactly 1 each", Pass: ptr(bad == 0 && fails == 0)}
	if len(counts) > 0 {
		g.Value = float64(counts[0])
		g.Max = float64(counts[len(counts)-1])
		g.Note = fmt.Sprintf("min %d, max %d regenerations per holder crash", counts[0], counts[len(counts)-1])
	}
	return []Row{r, g}
}

func tokenBytes(vips int, tune func(*ring.Config)) Row {
	s := ringtest.New(ringtest.Options{Seed: 7, N: 3, Paths: 1, VIPs: vips, Link: ringtest.LAN, NoChecks: true, Ring: tune})
	s.StartAll()
	s.RunUntilConverged(10_000_000)
	s.Run(1_000_000)
	b0, h0 := s.Stats().TokenBytes, hopsOf(s)
	s.Run(10_000_000)
	b, h := s.Stats().TokenBytes-b0, hopsOf(s)-h0
	return Row{Metric: "token_bytes_per_hop", N: 3, Unit: "bytes", Value: math.Round(float64(b) / float64(h)), Samples: int(h),
		Note: fmt.Sprintf("%d VIPs; data frames (14-byte header + token) on one path, before sealing; acks (12 bytes per frame) not counted", vips)}
}

func hopsOf(s *ringtest.Sim) uint64 {
	var h uint64
	for _, id := range s.Up() {
		st, _ := s.Status(id)
		h += st.Counters.TokensAccepted
	}
	return h
}

func falseRemovals(hops int, both bool, tune func(*ring.Config)) Row {
	s := ringtest.New(ringtest.Options{Seed: 11, N: 3, Paths: 2, Link: ringtest.LAN, NoChecks: true, Ring: tune})
	s.StartAll()
	s.RunUntilConverged(10_000_000)
	lossy := ringtest.LAN
	lossy.Loss = 0.05
	for a := ring.NodeID(1); a <= 3; a++ {
		for b := ring.NodeID(1); b <= 3; b++ {
			if a != b {
				s.SetLink(a, b, 0, lossy)
				if both {
					s.SetLink(a, b, 1, lossy)
				}
			}
		}
	}
	var d0, q0, g0 uint64
	for _, id := range s.Up() {
		st, _ := s.Status(id)
		d0, q0, g0 = d0+st.Counters.Drops, q0+st.Counters.Queries, g0+st.Counters.Regenerations
	}
	h0 := hopsOf(s)
	for hopsOf(s)-h0 < uint64(hops) {
		s.Run(1_000_000)
	}
	var d, q, g uint64
	for _, id := range s.Up() {
		st, _ := s.Status(id)
		d, q, g = d+st.Counters.Drops, q+st.Counters.Queries, g+st.Counters.Regenerations
	}
	d, q, g = d-d0, q-q0, g-g0
	r := Row{Metric: "false_removals", N: 3, Unit: "count", Value: float64(d), Samples: int(hopsOf(s) - h0),
		Note: fmt.Sprintf("5%% loss on path 0 of 2; %d 911s, %d regenerations", q, g)}
	if both {
		r.Metric = "false_removals_stress"
		r.Note = fmt.Sprintf("5%% loss on both paths (stress, no target); %d 911s, %d regenerations", q, g)
	} else {
		r.Target = "0"
		r.Pass = ptr(d == 0 && q == 0 && g == 0)
	}
	if d == 0 {
		r.Note += "; value 0"
	}
	return r
}

func healRow(n, trials int, tune func(*ring.Config)) Row {
	var ms []float64
	fails := 0
	for t := 0; t < trials; t++ {
		s := ringtest.New(ringtest.Options{Seed: uint64(5000 + t), N: n, Paths: 2, Link: ringtest.LAN, Ring: tune})
		s.StartAll()
		if _, ok := s.RunUntilConverged(10_000_000); !ok {
			fails++
			continue
		}
		var a, b []ring.NodeID
		for i := 1; i <= n; i++ {
			if s.Rand().IntN(2) == 0 {
				a = append(a, ring.NodeID(i))
			} else {
				b = append(b, ring.NodeID(i))
			}
		}
		s.Partition(a, b)
		s.Run(1_000_000)
		s.Heal()
		took, ok := s.RunUntilConverged(5_000_000)
		if !ok || s.Err() != nil {
			fails++
			continue
		}
		ms = append(ms, float64(took)/1000)
	}
	r := summary("heal_to_one_ring", n, "ms", ms, fails, "max <= 1000")
	r.Pass = ptr(fails == 0 && r.Max <= 1000)
	r.Note = "random two-way split for 1 s, then heal; one ring, every VIP exactly one owner; invariants checked throughout"
	return r
}

func summary(metric string, n int, unit string, v []float64, fails int, target string) Row {
	slices.Sort(v)
	r := Row{Metric: metric, N: n, Unit: unit, Samples: len(v), Fail: fails, Target: target}
	if len(v) > 0 {
		r.P50 = v[len(v)*50/100]
		r.P99 = v[min(len(v)-1, len(v)*99/100)]
		r.Max = v[len(v)-1]
	}
	return r
}

func printTable(rows []Row) {
	fmt.Printf("%-32s %-4s %4s %-6s %9s %9s %9s %9s %8s %5s  %s\n", "metric", "src", "N", "unit", "p50", "p99", "max", "value", "samples", "fails", "target")
	f := func(v float64) string {
		if v == 0 {
			return "-"
		}
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	for _, r := range rows {
		t := r.Target
		if r.Pass != nil {
			t += map[bool]string{true: " PASS", false: " FAIL"}[*r.Pass]
		}
		v := f(r.Value)
		if r.Value == 0 && (r.Unit == "count") {
			v = "0"
		}
		fmt.Printf("%-32s %-4s %4d %-6s %9s %9s %9s %9s %8d %5d  %s\n", r.Metric, r.Source, r.N, r.Unit, f(r.P50), f(r.P99), f(r.Max), v, r.Samples, r.Fail, t)
		if r.Note != "" {
			fmt.Printf("    %s\n", r.Note)
		}
	}
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			fatalf("bad number %q", f)
		}
		out = append(out, v)
	}
	return out
}

func ptr(b bool) *bool { return &b }

func fatalf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "benchring: "+f+"\n", a...)
	os.Exit(1)
}
