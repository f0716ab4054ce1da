// Command ringnetbench measures the ring over real UDP: N instances of the
// ring core, each with its own ringnet driver, bound to loopback addresses
// with two paths each (node i: 127.77.1.i and 127.77.2.i), at the default
// timers. It is the real-UDP half of `make bench-ring`.
//
// With -mode proc (the default) every node is its own process, as in
// production, and a crash is SIGKILL; with -mode inproc all nodes share
// this process and a crash closes a driver.
//
// It measures, for each N:
//   - crash-to-new-membership-at-all-survivors: from the crash until every
//     survivor has committed a state whose members are exactly the
//     survivors (the instant each survivor committed it, as it reports).
//     p50, p99 and max over -trials crashes; the victim goes round the node
//     map (so sometimes it holds the token) after a random 10-50 ms pause.
//     After each, the victim restarts; the time until all N are members
//     again is the rejoin time (in proc mode it includes the exec).
//   - CPU per node at default timers: getrusage(RUSAGE_SELF) user+system
//     time over a steady-state -window. In proc mode each node reports its
//     own (value = mean over nodes, max = the busiest); in inproc mode it
//     is the whole process's divided by N.
//   - token bytes per hop on the wire: the drivers' sent bytes (ringnet
//     header, payload, tag, every path, token frames and acks) over the
//     window, divided by the tokens accepted (one per hop); also with the
//     28 bytes of IPv4 and UDP headers per datagram.
//
// It prints a table and writes the JSON rows described in docs/ring.md to
// -out.
package main

import (
	"bufio"
	"cmp"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/ringway/ringway/ring/internal/benchrow"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ring/ringnet"
)

func main() {
	var (
		ns       = flag.String("n", "3,8", "comma-separated cluster sizes (2..250)")
		mode     = flag.String("mode", "proc", "proc: one process per node, crash = SIGKILL; inproc: all in this process, crash = Close")
		trials   = flag.Int("trials", 100, "crashes per cluster size")
		window   = flag.Duration("window", 10*time.Second, "steady-state window for CPU and bytes per hop")
		carriage = flag.Int("carriage", 0, "bytes of synthetic carriage on the token (0: none)")
		out      = flag.String("out", "bench/out/ring-udp.json", "JSON rows file (\"\" to skip)")
		timeout  = flag.Duration("timeout", 5*time.Second, "give up on one crash or rejoin after this long")
		cpuprof  = flag.String("cpuprofile", "", "inproc: write a CPU profile of the steady-state window to this file")
		hop      = flag.Int("hop", -1, "override ring HopInterval, ticks (-1: ring.DefaultConfig)")
		minRot   = flag.Int("minrot", -1, "override ring MinRotation, ticks (-1: ring.DefaultConfig, 0: off)")
		// Internal: a child node of -mode proc.
		childID = flag.Int("child", 0, "internal: run node ID of a -mode proc cluster")
		childN  = flag.Int("nodes", 0, "internal: cluster size, with -child")
		port    = flag.Int("port", 0, "internal: UDP port, with -child")
		keyHex  = flag.String("key", "", "internal: cluster key, with -child")
		ticker  = flag.Bool("ticker", false, "internal: run a bare 2 ms ticker (the CPU baseline)")
	)
	flag.Parse()
	if *ticker {
		bareTicker()
		return
	}
	if *childID > 0 {
		key, err := hex.DecodeString(*keyHex)
		if err != nil {
			fatalf("-key: %v", err)
		}
		sp := spec{n: *childN, addrs: loopbackAddrs(*childN, uint16(*port)), key: key, carriage: *carriage, hop: *hop, minRot: *minRot}
		if err := child(ring.NodeID(*childID), sp); err != nil {
			fatalf("node %d: %v", *childID, err)
		}
		return
	}
	if *mode != "proc" && *mode != "inproc" {
		fatalf("-mode %q: want proc or inproc", *mode)
	}
	profile = *cpuprof
	var rows []Row
	for _, f := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 || n > 250 {
			fatalf("bad -n entry %q: want 2..250", f)
		}
		r, err := benchN(*mode, n, *trials, *window, *carriage, *hop, *minRot, *timeout)
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

// Row is one JSON result row (docs/ring.md, "Benchmark rows").
type Row = benchrow.Row

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
	fmt.Fprintf(w, "%-22s %4s %-6s %-7s %9s %9s %9s %8s %5s %5s  %s\n", "metric (real UDP)", "N", "mode", "unit", "p50", "p99", "max", "value", "fails", "load", "target")
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
		fmt.Fprintf(w, "%-22s %4d %-6s %-7s %9s %9s %9s %8s %5d %5.1f  %s\n", r.Metric, r.N, r.Mode, r.Unit, f(r.P50), f(r.P99), f(r.Max), f(r.Value), r.Fail, r.LoadAvg, t)
	}
}

// fleet is a running cluster of nodes.
type fleet interface {
	start(id ring.NodeID, goal []ring.NodeID) error // (re)start node id
	crash(id ring.NodeID)                           // stop it without a leave
	live() []*view                                  // the running nodes' views
	sample() (sample, error)
	dump()
	close()
}

// sample is a reading of the counters summed over the nodes, and CPU time
// per process.
type sample struct {
	at           time.Time
	cpu          []time.Duration
	tx, dg, hops uint64
	cs           uint64 // thread context switches (voluntary + involuntary), all processes
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
		for _, as := range loopbackAddrs(n, port) {
			for _, a := range as {
				c, err := ringnet.ListenUDP(a)
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

func benchN(mode string, n, trials int, window time.Duration, carriage, hop, minRot int, timeout time.Duration) ([]Row, error) {
	port, err := freePort(n)
	if err != nil {
		return nil, err
	}
	key := make([]byte, ringnet.KeyLen)
	crand.Read(key)
	sp := spec{n: n, addrs: loopbackAddrs(n, port), key: key, carriage: carriage, hop: hop, minRot: minRot}
	var f fleet
	if mode == "proc" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		f = &proc{spec: sp, exe: exe, kids: make([]*kid, n)}
	} else {
		f = &inproc{spec: sp, inst: make([]*instance, n)}
	}
	defer f.close()
	all := sp.nodeIDs()
	t0 := time.Now()
	for _, id := range all {
		if err := f.start(id, all); err != nil {
			return nil, fmt.Errorf("start node %d: %w", id, err)
		}
	}
	if _, ok := waitViews(f.live(), 10*time.Second); !ok {
		f.dump()
		return nil, fmt.Errorf("the %d instances did not form one ring within 10 s", n)
	}
	formed := time.Since(t0)
	fmt.Fprintf(os.Stderr, "N=%d (%s): ring formed in %v; steady state for %v\n", n, mode, formed.Round(time.Millisecond), window)
	load := benchrow.LoadAvg()

	// Steady state: CPU and bytes per hop.
	if profile != "" && mode == "inproc" {
		pf, err := os.Create(profile)
		if err != nil {
			return nil, err
		}
		pprof.StartCPUProfile(pf)
		defer pf.Close()
	}
	s0, err := f.sample()
	if err != nil {
		return nil, err
	}
	time.Sleep(window)
	s1, err := f.sample()
	if err != nil {
		return nil, err
	}
	pprof.StopCPUProfile()
	hops := float64(s1.hops - s0.hops)
	if hops == 0 {
		return nil, fmt.Errorf("no token hop in %v", window)
	}
	el := s1.at.Sub(s0.at)
	var cpus []float64
	for i := range s1.cpu {
		cpus = append(cpus, 100*float64(s1.cpu[i]-s0.cpu[i])/float64(el))
	}
	var cpuMean, cpuMax float64
	if mode == "inproc" {
		cpuMean = cpus[0] / float64(n)
	} else {
		for _, c := range cpus {
			cpuMean += c / float64(len(cpus))
			cpuMax = max(cpuMax, c)
		}
	}
	bph := float64(s1.tx-s0.tx) / hops
	dph := float64(s1.dg-s0.dg) / hops
	cph := float64(s1.cs-s0.cs) / hops
	rot := float64(el.Microseconds()) / 1000 / (hops / float64(n))

	base, err := baselineTicker(window)
	if err != nil {
		return nil, err
	}

	// Crashes.
	var detect, rejoin []float64
	fails := 0
	for k := range trials {
		victim := ring.NodeID(k%n + 1)
		survivors := slices.DeleteFunc(slices.Clone(all), func(x ring.NodeID) bool { return x == victim })
		time.Sleep(time.Duration(rand.IntN(40)+10) * time.Millisecond) // a random phase of the rotation
		for _, v := range f.live() {
			v.setGoal(survivors) // the victim's view goes with it
		}
		start := time.Now()
		f.crash(victim)
		at, ok := waitViews(f.live(), timeout)
		if !ok {
			fails++
			fmt.Fprintf(os.Stderr, "N=%d trial %d: survivors did not agree on %v within %v\n", n, k, survivors, timeout)
			f.dump()
		} else {
			detect = append(detect, ms(at.Sub(start)))
		}
		rs := time.Now()
		if err := f.start(victim, all); err != nil {
			return nil, fmt.Errorf("restart node %d: %w", victim, err)
		}
		for _, v := range f.live() {
			v.setGoal(all)
		}
		at, ok = waitViews(f.live(), timeout)
		if !ok {
			f.dump()
			return nil, fmt.Errorf("trial %d: node %d did not rejoin within %v", k, victim, timeout)
		}
		rejoin = append(rejoin, ms(at.Sub(rs)))
	}

	d, r := dist(detect), dist(rejoin)
	crashHow := map[string]string{"proc": "SIGKILL of one node's process", "inproc": "Close of one node's driver (no leave)"}[mode]
	cpuNote := map[string]string{
		"proc":   fmt.Sprintf("each node's own getrusage(RUSAGE_SELF) user+system over %v of steady state / wall time; value = mean over nodes, max = busiest node", window),
		"inproc": fmt.Sprintf("getrusage(RUSAGE_SELF) of the one process holding all N nodes over %v of steady state / wall time / N", window),
	}[mode]
	rows := []Row{
		{Metric: "crash_to_membership", Unit: "ms", P50: d.p50, P99: d.p99, Max: d.max, Samples: len(detect), Fail: fails,
			Target: map[bool]string{true: "p99 <= 100 ms"}[n == 3], Pass: passIf(n == 3, d.p99 <= 100 && fails == 0),
			Note: crashHow + " until every survivor committed members == survivors; victims round-robin"},
		{Metric: "restart_to_rejoin", Unit: "ms", P50: r.p50, P99: r.p99, Max: r.max, Samples: len(rejoin),
			Note: "restart of the victim until all N committed members == all"},
		{Metric: "cpu_per_node", Unit: "% core", Value: round2(cpuMean), Max: round2(cpuMax), Samples: len(cpus),
			Target: "< 1 % of a core", Pass: ptr(max(cpuMean, cpuMax) < 1), Note: cpuNote},
		{Metric: "baseline_ticker_cpu", Unit: "% core", Value: round2(base), Samples: 1,
			Note: fmt.Sprintf("a process doing nothing but a %v Go ticker, same getrusage method: the floor the host puts under any process that wakes every tick", ringnet.DefaultConfig().Tick)},
		{Metric: "token_bytes_per_hop", Unit: "bytes", Value: round2(bph), Samples: int(hops),
			Note: fmt.Sprintf("UDP payload bytes sent per token hop: ringnet header+tag, both paths, token frames and acks; %.2f datagrams per hop; synthetic carriage of %d bytes", dph, carriage)},
		{Metric: "token_bytes_per_hop_ip", Unit: "bytes", Value: round2(bph + 28*dph), Samples: int(hops),
			Note: "token_bytes_per_hop plus 28 bytes of IPv4 and UDP header per datagram"},
		{Metric: "context_switches_per_hop", Unit: "count", Value: round2(cph), Samples: int(hops),
			Note: "getrusage ru_nvcsw+ru_nivcsw (every thread) summed over the nodes / token hops: the wakeups a hop costs the cluster (proc mode adds the harness's sample requests, negligible)"},
		{Metric: "rotation", Unit: "ms", Value: round2(rot), Samples: int(hops), Note: "window / (token hops / N)"},
		{Metric: "formation", Unit: "ms", Value: round2(ms(formed)), Samples: 1, Note: "all N started at once until all committed members == all"},
	}
	for i := range rows {
		rows[i].Source, rows[i].N, rows[i].Mode = "udp", n, mode
		rows[i].LoadAvg, rows[i].Cores, rows[i].Timers = load, runtime.NumCPU(), timers(sp.ringConfig(1))
	}
	return rows, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// profile is the -cpuprofile file.
var profile string

// timers describes the timers in use, for the rows.
func timers(rc ring.Config) string {
	return fmt.Sprintf("tick %v, hop %d, min rotation %d (hold %d at N=%d), ack timeout %d x %d retries (budget %d ticks), token loss auto (%d)",
		ringnet.DefaultConfig().Tick, rc.HopInterval, rc.MinRotation, rc.Hold(len(rc.Nodes)), len(rc.Nodes), rc.AckTimeout, rc.AckRetries, rc.AckBudget(), rc.TokenLossTicks())
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

// bareTicker runs a 2 ms ticker until stdin closes, answering "s" with its
// CPU time like a node.
func bareTicker() {
	t := time.NewTicker(ringnet.DefaultConfig().Tick)
	go func() {
		for range t.C {
		}
	}()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		fmt.Printf("%d\n", ru.Utime.Nano()+ru.Stime.Nano())
	}
}

// baselineTicker measures the CPU of a bare ticker process over window, in
// percent of a core.
func baselineTicker(window time.Duration) (float64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe, "-ticker")
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer cmd.Wait()
	defer in.Close()
	sc := bufio.NewScanner(out)
	read := func() (time.Duration, time.Time, error) {
		io.WriteString(in, "s\n")
		if !sc.Scan() {
			return 0, time.Time{}, fmt.Errorf("ticker baseline: no answer")
		}
		v, err := strconv.ParseInt(sc.Text(), 10, 64)
		return time.Duration(v), time.Now(), err
	}
	time.Sleep(200 * time.Millisecond)
	c0, t0, err := read()
	if err != nil {
		return 0, err
	}
	time.Sleep(window)
	c1, t1, err := read()
	if err != nil {
		return 0, err
	}
	return 100 * float64(c1-c0) / float64(t1.Sub(t0)), nil
}
