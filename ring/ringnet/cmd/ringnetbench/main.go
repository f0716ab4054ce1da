// Command ringnetbench measures the ring over real UDP: N instances of the
// ring core, each with its own ringnet driver, in this one process, bound to
// loopback addresses with two paths each (node i: 127.77.1.i and 127.77.2.i).
//
// It measures, for each N:
//   - crash-to-new-membership-at-all-survivors: an instance is closed
//     without a leave (its peers just stop hearing it, as after kill -9);
//     the time from the close until every survivor has committed a state
//     whose members are exactly the survivors. p50, p99 and max over
//     -trials crashes, the victim going round the node map (so sometimes
//     it holds the token). After each, the victim restarts and the time
//     until all N are members again is the rejoin time.
//   - CPU per node at default timers: getrusage(RUSAGE_SELF) user+system
//     time over a steady-state window, divided by the window and by N. It
//     includes everything in the process (drivers, cores, this harness, the
//     Go runtime), so it is an upper bound for one node's ring work.
//   - token bytes per hop on the wire: the drivers' sent bytes (ringnet header,
//     payload, tag, every path, token frames and acks) over the window,
//     divided by the tokens accepted (one per hop), and the same with the
//     28 bytes of IPv4 and UDP headers per datagram.
//
// It prints a table and writes JSON rows (docs/ring.md, "Real-UDP benchmark
// rows") to -out.
package main

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ring/ringnet"
)

func main() {
	var (
		ns       = flag.String("n", "3,8", "comma-separated cluster sizes (at most 250)")
		trials   = flag.Int("trials", 100, "crashes per cluster size")
		window   = flag.Duration("window", 10*time.Second, "steady-state window for CPU and bytes per hop")
		carriage = flag.Int("carriage", 0, "bytes of synthetic carriage on the token (0: none)")
		out      = flag.String("out", "bench/out/ring-udp.json", "JSON rows file (\"\" to skip)")
		timeout  = flag.Duration("timeout", 5*time.Second, "give up on one crash or rejoin after this long")
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of the steady-state windows to this file")
		hop      = flag.Int("hop", -1, "override ring HopInterval, ticks (-1: ring.DefaultConfig)")
	)
	flag.Parse()
	profile = *cpuprof
	hopOverride = *hop
	var rows []Row
	for _, f := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 || n > 250 {
			fatalf("bad -n entry %q: want 2..250", f)
		}
		r, err := benchN(n, *trials, *window, *carriage, *timeout)
		if err != nil {
			fatalf("N=%d: %v", n, err)
		}
		rows = append(rows, r...)
	}
	printTable(os.Stdout, rows)
	if *out != "" {
		if err := writeRows(*out, rows); err != nil {
			fatalf("%v", err)
		}
		fmt.Printf("wrote %s\n", *out)
	}
}

func fatalf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "ringnetbench: "+f+"\n", a...)
	os.Exit(1)
}

// Row is one JSON result row (documented in docs/ring.md).
type Row struct {
	Source  string  `json:"source"` // "udp"
	Metric  string  `json:"metric"`
	N       int     `json:"n"`
	Unit    string  `json:"unit"`
	P50     float64 `json:"p50,omitempty"`
	P99     float64 `json:"p99,omitempty"`
	Max     float64 `json:"max,omitempty"`
	Value   float64 `json:"value,omitempty"`
	Samples int     `json:"samples,omitempty"`
	Fail    int     `json:"failures"`
	Target  string  `json:"target,omitempty"`
	Pass    *bool   `json:"pass,omitempty"`
	Note    string  `json:"note,omitempty"`
	// LoadAvg is the host's 1-minute load average when the measurement of
	// this N began: timing figures on a shared machine depend on it.
	LoadAvg float64 `json:"loadavg_1m"`
	Cores   int     `json:"host_cores"`
	Timers  string  `json:"timers"`
}

func writeRows(path string, rows []Row) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func printTable(w *os.File, rows []Row) {
	fmt.Fprintf(w, "%-22s %4s %-8s %9s %9s %9s %10s %6s %5s  %s\n", "metric (real UDP)", "N", "unit", "p50", "p99", "max", "value", "fails", "load", "target")
	for _, r := range rows {
		f := func(v float64) string {
			if v == 0 {
				return "-"
			}
			return strconv.FormatFloat(v, 'f', 2, 64)
		}
		t := r.Target
		if r.Pass != nil {
			t += map[bool]string{true: " ok", false: " MISSED"}[*r.Pass]
		}
		fmt.Fprintf(w, "%-22s %4d %-8s %9s %9s %9s %10s %6d %5.1f  %s\n", r.Metric, r.N, r.Unit, f(r.P50), f(r.P99), f(r.Max), f(r.Value), r.Fail, r.LoadAvg, t)
	}
}

// instance is one node: a ring core and its driver.
type instance struct {
	id   ring.NodeID
	core *ring.Node
	d    *ringnet.Driver
	done chan struct{}

	mu      sync.Mutex
	members []ring.NodeID
	// goalAt is when members first equalled goal (zero: not yet).
	goal   []ring.NodeID
	goalAt time.Time
}

type cluster struct {
	n        int
	addrs    [][]netip.AddrPort
	key      []byte
	carriage int
	inst     []*instance
}

func newCluster(n, carriage int) (*cluster, error) {
	key := make([]byte, ringnet.KeyLen)
	crand.Read(key)
	c := &cluster{n: n, key: key, carriage: carriage, inst: make([]*instance, n)}
	port, err := freePort(n)
	if err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		c.addrs = append(c.addrs, []netip.AddrPort{
			netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 77, 1, byte(i)}), port),
			netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 77, 2, byte(i)}), port),
		})
	}
	return c, nil
}

func freePort(n int) (uint16, error) {
	for range 50 {
		c, err := ringnet.ListenUDP(netip.MustParseAddrPort("127.77.1.1:0"))
		if err != nil {
			return 0, err
		}
		port := c.(interface{ LocalPort() uint16 }).LocalPort()
		c.Close()
		ok := true
		for i := 1; i <= n && ok; i++ {
			for sub := byte(1); sub <= 2; sub++ {
				c, err := ringnet.ListenUDP(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 77, sub, byte(i)}), port))
				if err != nil {
					ok = false
					break
				}
				c.Close()
			}
		}
		if ok {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no UDP port free on all of 127.77.{1,2}.1-%d", n)
}

func (c *cluster) nodeIDs() []ring.NodeID {
	ids := make([]ring.NodeID, c.n)
	for i := range ids {
		ids[i] = ring.NodeID(i + 1)
	}
	return ids
}

// start boots instance id with default timers.
func (c *cluster) start(id ring.NodeID, goal []ring.NodeID) error {
	rc := ring.DefaultConfig()
	rc.ID, rc.Nodes, rc.Paths = id, c.nodeIDs(), 2
	if hopOverride >= 0 {
		rc.HopInterval = hopOverride
	}
	rc.Rand = rand.Uint64
	size := c.carriage
	rc.Holder = ring.HolderFunc(func(t ring.TokenView) []ring.Carriage {
		if t.Carriages == nil && size > 0 {
			return []ring.Carriage{{Kind: 100, Data: make([]byte, size)}}
		}
		return t.Carriages
	})
	core, err := ring.NewNode(rc)
	if err != nil {
		return err
	}
	dc := ringnet.DefaultConfig()
	dc.Self, dc.Nodes, dc.Key = id, c.addrs, c.key
	dc.Logger = slog.New(slog.DiscardHandler)
	d, err := ringnet.New(dc, core)
	if err != nil {
		return err
	}
	in := &instance{id: id, core: core, d: d, done: make(chan struct{}), goal: goal}
	c.inst[id-1] = in
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case s := <-d.States():
				in.observe(s.Members)
			case <-d.Done():
				return
			}
		}
	}()
	go func() {
		d.Run(context.Background())
		wg.Wait()
		close(in.done)
	}()
	return nil
}

func (in *instance) observe(members []ring.NodeID) {
	now := time.Now()
	in.mu.Lock()
	defer in.mu.Unlock()
	in.members = members
	if in.goalAt.IsZero() && in.goal != nil && slices.Equal(members, in.goal) {
		in.goalAt = now
	}
}

// setGoal resets the goal membership of every live instance.
func (c *cluster) setGoal(goal []ring.NodeID) {
	for _, in := range c.inst {
		if in == nil {
			continue
		}
		in.mu.Lock()
		in.goal, in.goalAt = goal, time.Time{}
		if slices.Equal(in.members, goal) {
			in.goalAt = time.Now()
		}
		in.mu.Unlock()
	}
}

// waitGoal waits until every live instance has reached its goal and returns
// the latest time one did.
func (c *cluster) waitGoal(timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var last time.Time
		all := true
		for _, in := range c.inst {
			if in == nil {
				continue
			}
			in.mu.Lock()
			at := in.goalAt
			in.mu.Unlock()
			if at.IsZero() {
				all = false
				break
			}
			if at.After(last) {
				last = at
			}
		}
		if all {
			return last, true
		}
		time.Sleep(time.Millisecond) // polling; the instant is recorded by the watchers
	}
	return time.Time{}, false
}

// dump prints every live instance's view, for a failed trial.
func (c *cluster) dump() {
	for _, in := range c.inst {
		if in == nil {
			continue
		}
		in.mu.Lock()
		m := in.members
		in.mu.Unlock()
		var st ring.Status
		in.d.Do(context.Background(), func(ringnet.Core) { st = in.core.Status() })
		fmt.Fprintf(os.Stderr, "  node %d: committed members %v; status %+v; driver %+v\n", in.id, m, st, in.d.Stats())
	}
}

func (c *cluster) crash(id ring.NodeID) {
	in := c.inst[id-1]
	in.d.Close()
	<-in.done
	c.inst[id-1] = nil
}

func (c *cluster) close() {
	for i := range c.inst {
		if c.inst[i] != nil {
			c.crash(ring.NodeID(i + 1))
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// steady measures CPU and wire bytes per hop over window.
func (c *cluster) steady(window time.Duration) (cpuPct, bytesPerHop, dgramsPerHop, rotationMs float64, err error) {
	type snap struct{ tx, dg, hops uint64 }
	take := func() (s snap) {
		for _, in := range c.inst {
			st := in.d.Stats()
			s.tx += st.TxBytes
			s.dg += st.TxDatagrams
			var hops uint64
			if err := in.d.Do(context.Background(), func(ringnet.Core) { hops = in.core.Status().Counters.TokensAccepted }); err != nil {
				panic(err)
			}
			s.hops += hops
		}
		return s
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return 0, 0, 0, 0, err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	s0, c0, t0 := take(), cpuTime(), time.Now()
	time.Sleep(window)
	s1, c1, t1 := take(), cpuTime(), time.Now()
	hops := float64(s1.hops - s0.hops)
	if hops == 0 {
		return 0, 0, 0, 0, fmt.Errorf("no token hop in %v", window)
	}
	el := t1.Sub(t0)
	cpuPct = 100 * float64(c1-c0) / float64(el) / float64(c.n)
	bytesPerHop = float64(s1.tx-s0.tx) / hops
	dgramsPerHop = float64(s1.dg-s0.dg) / hops
	rotationMs = float64(el.Milliseconds()) / (hops / float64(c.n))
	return
}

func benchN(n, trials int, window time.Duration, carriage int, timeout time.Duration) ([]Row, error) {
	c, err := newCluster(n, carriage)
	if err != nil {
		return nil, err
	}
	defer c.close()
	all := c.nodeIDs()
	t0 := time.Now()
	for _, id := range all {
		if err := c.start(id, all); err != nil {
			return nil, fmt.Errorf("start node %d: %w", id, err)
		}
	}
	if _, ok := c.waitGoal(10 * time.Second); !ok {
		return nil, fmt.Errorf("the %d instances did not form one ring within 10 s", n)
	}
	formed := time.Since(t0)
	fmt.Fprintf(os.Stderr, "N=%d: ring formed in %v; steady state for %v\n", n, formed.Round(time.Millisecond), window)
	load0 := loadAvg()
	cpu, bph, dph, rot, err := c.steady(window)
	if err != nil {
		return nil, err
	}

	var detect, rejoin []float64
	fails := 0
	for k := range trials {
		victim := ring.NodeID(k%n + 1)
		survivors := slices.DeleteFunc(slices.Clone(all), func(x ring.NodeID) bool { return x == victim })
		// A random phase of the token rotation.
		time.Sleep(time.Duration(rand.IntN(40)+10) * time.Millisecond)
		c.inst[victim-1].mu.Lock()
		c.inst[victim-1].goal = nil
		c.inst[victim-1].mu.Unlock()
		c.setGoal(survivors)
		start := time.Now()
		c.crash(victim)
		at, ok := c.waitGoal(timeout)
		if !ok {
			fails++
			fmt.Fprintf(os.Stderr, "N=%d trial %d: survivors did not agree on %v within %v\n", n, k, survivors, timeout)
			c.dump()
		} else {
			detect = append(detect, float64(at.Sub(start).Microseconds())/1000)
		}
		c.setGoal(all)
		rs := time.Now()
		if err := c.start(victim, all); err != nil {
			return nil, fmt.Errorf("restart node %d: %w", victim, err)
		}
		at, ok = c.waitGoal(timeout)
		if !ok {
			return nil, fmt.Errorf("trial %d: node %d did not rejoin within %v", k, victim, timeout)
		}
		rejoin = append(rejoin, float64(at.Sub(rs).Microseconds())/1000)
	}
	load := load0
	d := dist(detect)
	pass := n != 3 || d.p99 <= 100
	cpuPass := cpu < 1
	rows := []Row{
		{Source: "udp", Metric: "crash_to_membership", N: n, Unit: "ms", P50: d.p50, P99: d.p99, Max: d.max, Samples: len(detect), Fail: fails,
			Target: map[bool]string{true: "p99 <= 100 ms", false: ""}[n == 3], Pass: passIf(n == 3, pass && fails == 0),
			Note: "close one instance (no leave) until every survivor committed members == survivors; victims round-robin"},
	}
	r := dist(rejoin)
	rows = append(rows,
		Row{Source: "udp", Metric: "restart_to_rejoin", N: n, Unit: "ms", P50: r.p50, P99: r.p99, Max: r.max, Samples: len(rejoin),
			Note: "new instance started until all N committed members == all"},
		Row{Source: "udp", Metric: "cpu_per_node", N: n, Unit: "% core", Value: round2(cpu), Samples: 1, Target: "< 1 % of a core", Pass: ptr(cpuPass),
			Note: fmt.Sprintf("getrusage(RUSAGE_SELF) user+system over %v of steady state / N; whole process (drivers, cores, harness, runtime)", window)},
		Row{Source: "udp", Metric: "token_bytes_per_hop", N: n, Unit: "bytes", Value: round2(bph), Samples: 1,
			Note: fmt.Sprintf("UDP payload bytes sent per token hop, both paths, token frames and acks; %.2f datagrams per hop; carriage %d bytes", dph, carriage)},
		Row{Source: "udp", Metric: "token_bytes_per_hop_ip", N: n, Unit: "bytes", Value: round2(bph + 28*dph), Samples: 1,
			Note: "token_bytes_per_hop plus 28 bytes of IPv4 and UDP header per datagram"},
		Row{Source: "udp", Metric: "rotation", N: n, Unit: "ms", Value: round2(rot), Samples: 1, Note: "window / (hops / N)"},
		Row{Source: "udp", Metric: "formation", N: n, Unit: "ms", Value: round2(float64(formed.Microseconds()) / 1000), Samples: 1,
			Note: "all N started at once until all committed members == all"},
	)
	for i := range rows {
		rows[i].LoadAvg, rows[i].Cores, rows[i].Timers = load, runtime.NumCPU(), timers()
	}
	return rows, nil
}

// loadAvg returns the 1-minute load average (0 when unknown).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// profile is the -cpuprofile file.
var profile string

// hopOverride is -hop.
var hopOverride = -1

// timers describes the ring timers in use, for the rows.
func timers() string {
	rc := ring.DefaultConfig()
	if hopOverride >= 0 {
		rc.HopInterval = hopOverride
	}
	return fmt.Sprintf("tick %v, hop %d, ack %d x%d retries, token loss auto", ringnet.DefaultConfig().Tick, rc.HopInterval, rc.AckTimeout, rc.AckRetries)
}

type distribution struct{ p50, p99, max float64 }

// dist returns nearest-rank percentiles.
func dist(xs []float64) distribution {
	if len(xs) == 0 {
		return distribution{}
	}
	s := slices.Clone(xs)
	slices.SortFunc(s, cmp.Compare)
	rank := func(p float64) float64 {
		i := int(p*float64(len(s))+0.999999) - 1
		return round2(s[max(0, min(i, len(s)-1))])
	}
	return distribution{rank(0.50), rank(0.99), round2(s[len(s)-1])}
}

func round2(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }

func ptr[T any](v T) *T { return &v }

// passIf returns &ok when the row has a target, nil otherwise.
func passIf(hasTarget, ok bool) *bool {
	if !hasTarget {
		return nil
	}
	return &ok
}
