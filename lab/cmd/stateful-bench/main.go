// Command stateful-bench measures stateful fail-over (issue 12) on the
// reference lab with three ringway nodes: long-lived TCP echo
// connections from the client to the server (a small message every 20 ms
// each) through the cluster, the filter on with default drop, the
// client's gateway on n1 and the server's on n2. For each fault (the
// handler n1 killed -9, cut off its switch, stopped; the authoritative
// node n3 killed; a rolling restart of every node; n3 joining while the
// connections run) it reports the connections that survived, the resets
// seen and the stalls, and, in the same run, the stateless cluster's
// stalls on the same faults. It also measures the replication bytes as a
// share of the forwarded bytes, the replication lag, and new TCP
// connections per second with replication on and off (interleaved). It
// prints a table and writes bench/out/stateful.json.
//
//	go run ./lab/cmd/stateful-bench -conns 1000
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/lab/workload"
	"github.com/ringway/ringway/mgmt"
)

func main() {
	conns := flag.Int("conns", 1000, "long-lived connections per fault")
	out := flag.String("out", "bench/out/stateful.json", "JSON file (\"\" to skip)")
	faults := flag.String("faults", "kill,cut,stop,kill-auth,rolling,join", "faults to run (\"none\": only the new-flows/s rounds)")
	rounds := flag.Int("rate-rounds", 2, "rounds of the new-flows/s measurement (replication on, off, interleaved; 0: none)")
	flag.DurationVar(&rateFor, "rate-for", 3*time.Second, "how long each new-flows/s round opens connections")
	flag.IntVar(&rateClients, "rate-clients", 16, "client goroutines of the new-flows/s rounds")
	flag.BoolVar(&waitFill, "wait-fill", false, "start the fault runs' connections only once every node is filled")
	flag.StringVar(&profileDir, "profile", "", "write CPU profiles of the nodes of the new-flows/s rounds to this directory (\"\" none)")
	bin := flag.String("ringway", "", "ringway binary (default: go build ./cmd/ringway)")
	flag.StringVar(&logDir, "logs", "bench/out/stateful-logs", "copy the nodes' logs of each run here (\"\" to skip)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fail(errors.New("needs root to build network namespaces"))
	}
	if *bin == "" {
		dir, err := os.MkdirTemp("", "stateful-bench-")
		if err != nil {
			fail(err)
		}
		defer os.RemoveAll(dir)
		*bin = filepath.Join(dir, "ringway")
		b := exec.Command("go", "build", "-o", *bin, "./cmd/ringway")
		b.Env = append(os.Environ(), "CGO_ENABLED=0")
		if o, err := b.CombinedOutput(); err != nil {
			fail(fmt.Errorf("go build ./cmd/ringway: %v\n%s", err, o))
		}
	}
	rep := report{Date: time.Now().UTC().Format(time.RFC3339), Conns: *conns}
	for _, f := range strings.Split(*faults, ",") {
		if f == "none" || f == "" {
			continue
		}
		for _, mode := range []string{"stateful", "stateless"} {
			if mode == "stateless" && (f == "join" || f == "kill-auth") {
				continue // nothing to compare: the stateless cluster has no authoritative node, and a join is not a fault
			}
			r, err := runFault(*bin, mode, f, *conns)
			if err != nil {
				fmt.Fprintf(os.Stderr, "stateful-bench: %s %s: %v\n", mode, f, err)
				r = row{Mode: mode, Fault: f, Error: err.Error()}
			}
			fmt.Fprintf(os.Stderr, "%s %s: %d/%d alive, resets %d/%d, stall p50 %.0f ms p99 %.0f ms max %.0f ms\n",
				mode, f, r.Alive, r.Conns, r.ClientResets, r.ServerResets, r.StallP50ms, r.StallP99ms, r.StallMaxms)
			rep.Rows = append(rep.Rows, r)
		}
	}
	for i := 0; i < *rounds; i++ {
		for _, on := range []bool{true, false} {
			v, err := flowRate(*bin, on)
			if err != nil {
				fmt.Fprintf(os.Stderr, "stateful-bench: flow rate (replication %v): %v\n", on, err)
				continue
			}
			if on {
				rep.FlowsOn = append(rep.FlowsOn, v)
			} else {
				rep.FlowsOff = append(rep.FlowsOff, v)
			}
		}
	}
	rep.print(os.Stdout)
	if *out != "" {
		os.MkdirAll(filepath.Dir(*out), 0o755)
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "stateful-bench:", err)
	os.Exit(1)
}

type row struct {
	Mode, Fault                string
	Conns, Alive               int
	ClientResets, ServerResets int
	StallP50ms, StallP99ms     float64
	StallMaxms                 float64
	Adoptions                  uint64  `json:",omitempty"`
	ReplBytes, FwdBytes        uint64  `json:",omitempty"`
	ReplShare                  float64 `json:",omitempty"` // replication bytes / forwarded bytes, the whole run
	SteadyShare                float64 `json:",omitempty"` // the same before the fault (setup and 2 s of exchanges)
	LagP99us                   int     `json:",omitempty"` // upper bound of the bucket (forward.LagBoundsUs)
	LagOver                    bool    `json:",omitempty"` // the p99 is beyond the last bound, LagP99us
	Error                      string  `json:",omitempty"`
}

type report struct {
	Date              string
	Conns             int
	Rows              []row
	FlowsOn, FlowsOff []float64 // new TCP connections per second, replication on / off
}

func (r report) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODE\tFAULT\tALIVE\tRESETS (client/server)\tSTALL p50\tp99\tmax\tADOPTED\tREPL/FWD BYTES (before the fault)\tLAG p99")
	for _, x := range r.Rows {
		if x.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\terror: %s\n", x.Mode, x.Fault, x.Error)
			continue
		}
		share, lag := "-", "-"
		if x.Mode == "stateful" {
			share = fmt.Sprintf("%.2f %% (%.2f %%)", 100*x.ReplShare, 100*x.SteadyShare)
			lag = fmt.Sprintf("< %d µs", x.LagP99us)
			if x.LagOver {
				lag = fmt.Sprintf("≥ %d µs", x.LagP99us)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d/%d\t%.0f ms\t%.0f ms\t%.0f ms\t%d\t%s\t%s\n", x.Mode, x.Fault, x.Alive, x.Conns,
			x.ClientResets, x.ServerResets, x.StallP50ms, x.StallP99ms, x.StallMaxms, x.Adoptions, share, lag)
	}
	tw.Flush()
	on, off := median(r.FlowsOn), median(r.FlowsOff)
	if on > 0 && off > 0 {
		fmt.Fprintf(w, "\nnew TCP connections/s through the cluster: replication on %.0f, off %.0f (median of %d each, interleaved): %.2f×\n",
			on, off, len(r.FlowsOn), on/off)
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// cluster is a lab of three nodes running ringway.
type cluster struct {
	l    *lab.Lab
	bin  string
	name string // for its logs
}

func newCluster(bin string, stateful, replicate bool) (*cluster, error) {
	b := make([]byte, 3)
	rand.Read(b)
	dir, err := os.MkdirTemp("", "stateful-bench-lab-")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := lab.Build(ctx, lab.Spec{Prefix: "rsb" + hex.EncodeToString(b), Nodes: 3, StateDir: dir, WireChecksums: true})
	if err != nil {
		return nil, err
	}
	c := &cluster{l: l, bin: bin}
	server := []config.Net{{Prefix: netip.PrefixFrom(lab.ServerAddr, 32)}}
	_, err = l.WriteCluster(func(i int, cf *config.Config) {
		cf.VIPs = []config.VIPPolicy{
			{VIP: lab.ExtGateway, Preferred: "n1", Persistence: config.PersistPreferred},
			{VIP: lab.IntGateway, Preferred: "n2", Persistence: config.PersistPreferred},
		}
		if !stateful {
			return
		}
		cf.Filter.Enabled = true
		cf.Filter.Default = config.ActionDrop
		cf.Filter.Rules = []config.Rule{{Name: "web", From: []config.Net{{Name: "ext"}}, To: server, Proto: config.ProtoTCP,
			Ports: []config.PortRange{{First: 80, Last: 80}}, Action: config.ActionAccept}}
		cf.Filter.Replication = replicate
	})
	if err != nil {
		l.Close()
		return nil, err
	}
	return c, nil
}

// logDir receives the nodes' logs of every run ("" none).
var logDir string

// The new-flows/s rounds: how long, how many clients, and where the
// nodes' CPU profiles go ("" none).
var (
	rateFor     time.Duration
	rateClients int
	profileDir  string
	rateRound   int
	// waitFill makes the fault runs start their connections only once
	// every running node is filled (a cold start's fills move rows).
	waitFill bool
)

func (c *cluster) close() {
	if logDir != "" && c.name != "" {
		os.MkdirAll(logDir, 0o755)
		for i := 1; i <= 3; i++ {
			if b, err := os.ReadFile(c.l.LogPath(c.l.Node(i), "ringway")); err == nil {
				os.WriteFile(filepath.Join(logDir, fmt.Sprintf("%s-n%d.log", c.name, i)), b, 0o644)
			}
		}
	}
	c.l.Close()
	os.RemoveAll(filepath.Dir(c.l.Dir())) // the lab's <StateDir>/<Prefix> and the temporary StateDir around it
}

func (c *cluster) start(i int) error { return c.l.StartNode(c.bin, i) }

// restart starts node i again after a kill, trying again while its
// sockets are still held by the dead process (seen: "bind: address
// already in use" right after the process was gone).
func (c *cluster) restart(i int) error {
	var err error
	for try := 0; try < 10; try++ {
		if err = c.start(i); err != nil {
			return err
		}
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			_, err = c.l.NodeStatus(ctx, i)
			cancel()
			if err == nil {
				return nil
			}
			if pids, _ := c.l.Pids(c.l.Node(i)); len(pids) == 0 {
				break // it exited: start it again
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("n%d did not come back: %w", i, err)
}

// waitMembers waits until every node of nodes sees exactly those members
// and owns or knows an owner of both gateways among them.
func (c *cluster) waitMembers(nodes []int, within time.Duration, gateways bool) error {
	want := make([]string, len(nodes))
	for k, i := range nodes {
		want[k] = fmt.Sprintf("n%d", i)
	}
	return c.waitAll(nodes, within, fmt.Sprintf("members %v", want), func(st mgmt.Status) string {
		if !slices.Equal(st.Members, want) {
			return fmt.Sprintf("members %v", st.Members)
		}
		if gateways && (st.Owner(lab.ExtGateway) != "n1" || st.Owner(lab.IntGateway) != "n2") {
			return fmt.Sprintf("gateways on %s and %s", st.Owner(lab.ExtGateway), st.Owner(lab.IntGateway))
		}
		return ""
	})
}

// waitAll polls the status of nodes every 50 ms until bad finds nothing
// wrong with any of them (it says what is wrong), for at most within.
func (c *cluster) waitAll(nodes []int, within time.Duration, what string, bad func(mgmt.Status) string) error {
	deadline := time.Now().Add(within)
	last := ""
	for {
		ok := true
		for _, i := range nodes {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := c.l.NodeStatus(ctx, i)
			cancel()
			if err != nil {
				ok, last = false, fmt.Sprintf("n%d: %v", i, err)
				break
			}
			if why := bad(st); why != "" {
				ok, last = false, fmt.Sprintf("n%d: %s", i, why)
				break
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not reached within %v: %s", what, within, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// snapshot is what the nodes' metrics and status said.
type snapshot struct {
	repl, fwd uint64
	lag       []uint64
	bounds    []uint32
	adoptions uint64
}

func (c *cluster) snapshot(i int) snapshot {
	var s snapshot
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if st, err := c.l.NodeStatus(ctx, i); err == nil && st.Filter != nil && st.Filter.Tunnel != nil && st.Filter.Tunnel.Replication != nil {
		r := st.Filter.Tunnel.Replication
		s.lag, s.bounds, s.adoptions = r.LagUs, r.LagBoundsUs, r.Adoptions
	}
	c.l.NodeAPI(i, func(cl *mgmt.Client) error {
		m, err := cl.Metrics(ctx)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(strings.NewReader(m))
		for sc.Scan() {
			line := sc.Text()
			f := strings.Fields(line)
			if len(f) != 2 {
				continue
			}
			v, _ := strconv.ParseFloat(f[1], 64)
			switch {
			case strings.HasPrefix(line, "ringway_router_forwarded_bytes_total{"):
				s.fwd += uint64(v)
			case strings.HasPrefix(line, `ringway_replication_bytes_total{direction="sent"}`):
				s.repl += uint64(v)
			}
		}
		return nil
	})
	return s
}

func (s *snapshot) add(o snapshot) {
	s.repl += o.repl
	s.fwd += o.fwd
	s.adoptions += o.adoptions
	if len(o.bounds) > 0 {
		s.bounds = o.bounds
	}
	for i, v := range o.lag {
		if i >= len(s.lag) {
			s.lag = append(s.lag, 0)
		}
		s.lag[i] += v
	}
}

func runFault(bin, mode, fault string, n int) (row, error) {
	r := row{Mode: mode, Fault: fault, Conns: n}
	c, err := newCluster(bin, mode == "stateful", true)
	if err != nil {
		return r, err
	}
	c.name = mode + "-" + fault
	defer c.close()
	all := []int{1, 2, 3}
	first := all
	if fault == "join" {
		first = []int{1, 2}
	}
	for _, i := range first {
		if err := c.start(i); err != nil {
			return r, err
		}
	}
	if fault == "join" {
		if err := c.waitMembers(first, 20*time.Second, false); err != nil {
			return r, err
		}
	} else if err := c.waitMembers(all, 20*time.Second, true); err != nil {
		return r, err
	}
	l := c.l
	srv, err := workload.ListenTCPEcho(l, l.Server(), netip.AddrPortFrom(lab.ServerAddr, 80))
	if err != nil {
		return r, err
	}
	defer srv.Close()
	if mode == "stateful" && waitFill {
		if err := c.waitFilled(first, 10*time.Second); err != nil {
			return r, err
		}
	}
	setup := c.filterStatus()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conns, err := workload.StartConns(ctx, l, l.Client(), workload.ConnsConfig{Server: netip.AddrPortFrom(lab.ServerAddr, 80), N: n})
	if err != nil {
		return r, err
	}
	defer conns.Stop()
	time.Sleep(2 * time.Second)
	if s := workload.Summarize(conns.Snapshot(), time.Second); s.Alive != n {
		return r, fmt.Errorf("before the fault: %d of %d connections alive", s.Alive, n)
	}
	conns.ResetStalls()
	var steady snapshot // the connections' setup and 2 s of exchanges, before any fault
	for _, i := range first {
		steady.add(c.snapshot(i))
	}
	if steady.fwd > 0 {
		r.SteadyShare = float64(steady.repl) / float64(steady.fwd)
	}
	if mode == "stateful" {
		fmt.Fprintf(os.Stderr, "%s %s: before the fault, replication %d of %d forwarded bytes\n", mode, fault, steady.repl, steady.fwd)
		c.printDiff(setup, c.filterStatus())
	}
	var total snapshot
	survivors := all
	switch fault {
	case "kill", "cut", "stop", "kill-auth":
		victim := 1
		if fault == "kill-auth" {
			victim = 3
		}
		total.add(c.snapshot(victim))
		switch fault {
		case "cut":
			err = l.Cut(victim)
		case "stop":
			_, err = l.Signal(l.Node(victim), syscall.SIGSTOP)
			defer l.Signal(l.Node(victim), syscall.SIGCONT)
		default:
			_, err = l.Signal(l.Node(victim), syscall.SIGKILL)
		}
		if err != nil {
			return r, err
		}
		survivors = slices.DeleteFunc(slices.Clone(all), func(i int) bool { return i == victim })
		if err := c.waitMembers(survivors, 20*time.Second, false); err != nil {
			return r, err
		}
	case "rolling":
		for _, i := range all {
			total.add(c.snapshot(i))
			if err := l.StopNode(i, syscall.SIGKILL, 10*time.Second); err != nil {
				return r, err
			}
			if err := c.restart(i); err != nil {
				return r, err
			}
			if err := c.waitMembers(all, 20*time.Second, true); err != nil {
				return r, err
			}
			time.Sleep(2 * time.Second)
		}
	case "join":
		if err := c.start(3); err != nil {
			return r, err
		}
		if err := c.waitMembers(all, 20*time.Second, false); err != nil {
			return r, err
		}
	}
	time.Sleep(3 * time.Second)
	s := workload.Summarize(conns.Snapshot(), time.Second)
	for _, i := range survivors {
		total.add(c.snapshot(i))
	}
	r.Alive, r.ClientResets, r.ServerResets = s.Alive, s.Resets, int(srv.Resets())
	if s.Alive < n {
		for _, i := range survivors {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := c.l.NodeStatus(ctx, i)
			cancel()
			if err == nil && st.Filter != nil {
				b, _ := json.Marshal(st.Filter)
				fmt.Fprintf(os.Stderr, "%s %s: n%d members %v filter %s\n", mode, fault, i, st.Members, b)
			}
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	r.StallP50ms, r.StallP99ms, r.StallMaxms = ms(s.Quantile(0.5)), ms(s.Quantile(0.99)), ms(s.Quantile(1))
	r.Adoptions, r.ReplBytes, r.FwdBytes = total.adoptions, total.repl, total.fwd
	if total.fwd > 0 {
		r.ReplShare = float64(total.repl) / float64(total.fwd)
	}
	r.LagP99us, r.LagOver = mgmt.BoundedQuantile(total.lag, total.bounds, 0.99)
	return r, nil
}

// flowRate opens short TCP connections (connect, one 16-byte echo,
// close) from 16 client goroutines for 3 s through a fresh stateful
// cluster and returns the connections completed per second.
func flowRate(bin string, replicate bool) (float64, error) {
	c, err := newCluster(bin, true, replicate)
	if err != nil {
		return 0, err
	}
	defer c.close()
	rateRound++
	c.name = fmt.Sprintf("rate-%d-repl-%v", rateRound, replicate)
	for _, i := range []int{1, 2, 3} {
		var args []string
		if profileDir != "" {
			os.MkdirAll(profileDir, 0o755)
			p, _ := filepath.Abs(filepath.Join(profileDir, fmt.Sprintf("%s-n%d.pprof", c.name, i)))
			args = []string{"--cpu-profile", p}
		}
		if err := c.l.StartNode(c.bin, i, args...); err != nil {
			return 0, err
		}
	}
	if profileDir != "" {
		defer func() {
			for _, i := range []int{1, 2, 3} {
				c.l.StopNode(i, syscall.SIGTERM, 10*time.Second) // the profile is written as the node stops
			}
		}()
	}
	if err := c.waitMembers([]int{1, 2, 3}, 20*time.Second, true); err != nil {
		return 0, err
	}
	// Measure a settled cluster: every node filled (a cold start's fills
	// move rows for a rotation or two; docs/forward.md "The fill").
	if replicate {
		if err := c.waitFilled([]int{1, 2, 3}, 10*time.Second); err != nil {
			return 0, err
		}
	}
	before, cpu0, sw0 := c.filterStatus(), c.cpu(), c.switches()
	l := c.l
	srv, err := workload.ListenTCPEcho(l, l.Server(), netip.AddrPortFrom(lab.ServerAddr, 80))
	if err != nil {
		return 0, err
	}
	defer srv.Close()
	dst := netip.AddrPortFrom(lab.ServerAddr, 80).String()
	var done, failed atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(rateFor)
	var firstMu sync.Mutex
	var first []string // the first failures, when and why
	for range rateClients {
		wg.Go(func() {
			msg, got := make([]byte, 16), make([]byte, 16)
			for time.Now().Before(end) {
				err := l.Do(l.Client(), func() error {
					cn, err := net.DialTimeout("tcp4", dst, time.Second)
					if err != nil {
						return err
					}
					defer cn.Close()
					cn.SetDeadline(time.Now().Add(time.Second))
					if _, err := cn.Write(msg); err != nil {
						return err
					}
					_, err = io.ReadFull(cn, got)
					return err
				})
				if err != nil {
					failed.Add(1)
					firstMu.Lock()
					if len(first) < 3 {
						first = append(first, fmt.Sprintf("+%v: %v", time.Since(start).Round(time.Millisecond), err))
					}
					firstMu.Unlock()
					continue
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	v := float64(done.Load()) / rateFor.Seconds()
	fmt.Fprintf(os.Stderr, "new flows/s, replication %v: %.0f (%d failed%s)\n", replicate, v, failed.Load(), strings.Join(append([]string{""}, first...), "; "))
	cpu1, sw1 := c.cpu(), c.switches()
	var all time.Duration
	for i := range cpu1 {
		all += cpu1[i] - cpu0[i]
	}
	fmt.Fprintf(os.Stderr, "  CPU of the nodes: n1 %v, n2 %v, n3 %v: %.0f µs per new flow (load %s)\n",
		cpu1[0]-cpu0[0], cpu1[1]-cpu0[1], cpu1[2]-cpu0[2], float64(all.Microseconds())/max(1, float64(done.Load())), loadavg())
	fmt.Fprintf(os.Stderr, "  context switches of the nodes' threads per new flow: n1 %.1f, n2 %.1f, n3 %.1f\n",
		float64(sw1[0]-sw0[0])/max(1, float64(done.Load())), float64(sw1[1]-sw0[1])/max(1, float64(done.Load())),
		float64(sw1[2]-sw0[2])/max(1, float64(done.Load())))
	c.printDiff(before, c.filterStatus())
	return v, nil
}

// cpu returns the CPU time (user and system) the processes of each node's
// namespace have used so far.
func (c *cluster) cpu() [3]time.Duration {
	var out [3]time.Duration
	for i := 1; i <= 3; i++ {
		out[i-1], _ = c.l.CPU(c.l.Node(i))
	}
	return out
}

// switches returns the context switches (voluntary and not) of every
// thread of each node's processes so far: a wake-up count that, unlike
// CPU time, does not grow with the machine's load.
func (c *cluster) switches() [3]uint64 {
	var out [3]uint64
	for i := 1; i <= 3; i++ {
		out[i-1], _ = c.l.Switches(c.l.Node(i))
	}
	return out
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// waitFilled waits until the fill of every node of nodes says filled.
func (c *cluster) waitFilled(nodes []int, within time.Duration) error {
	return c.waitAll(nodes, within, "every node filled", func(st mgmt.Status) string {
		if st.Filter == nil || st.Filter.Tunnel == nil || st.Filter.Tunnel.Replication == nil ||
			st.Filter.Tunnel.Replication.Fill == nil || st.Filter.Tunnel.Replication.Fill.State != "filled" {
			return "not filled"
		}
		return ""
	})
}

// filterStatus returns every node's filter status (nil where none came).
func (c *cluster) filterStatus() [3]*mgmt.FilterStatus {
	var out [3]*mgmt.FilterStatus
	for i := 1; i <= 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := c.l.NodeStatus(ctx, i)
		cancel()
		if err == nil {
			out[i-1] = st.Filter
		}
	}
	return out
}

// printDiff prints, per node, what the tunnel and replication did
// between two filterStatus: where a new flow's cost goes.
// histDiff returns histogram b less an earlier snapshot a of it.
func histDiff(a, b []uint64) []uint64 {
	d := slices.Clone(b)
	for j := range min(len(a), len(d)) {
		d[j] -= a[j]
	}
	return d
}

func (c *cluster) printDiff(a, b [3]*mgmt.FilterStatus) {
	for i := range 3 {
		x, y := a[i], b[i]
		if x == nil || y == nil || x.Tunnel == nil || y.Tunnel == nil {
			continue
		}
		t0, t1 := x.Tunnel, y.Tunnel
		lat := histDiff(t0.Defer.AckLatencyUs, t1.Defer.AckLatencyUs)
		fmt.Fprintf(os.Stderr, "  n%d: new flows %d, redirects %d, registers sent %d, deferred %d (ack %d, timeout %d; ack p50 < %d µs, p99 < %d µs)",
			i+1, y.NewFlows-x.NewFlows, t1.Redirects-t0.Redirects, t1.Registers[0]-t0.Registers[0],
			t1.Defer.Deferred-t0.Defer.Deferred, t1.Defer.ReleasedAck-t0.Defer.ReleasedAck,
			t1.Defer.ReleasedTimeout-t0.Defer.ReleasedTimeout, mgmt.BucketQuantile(lat, 0.5), mgmt.BucketQuantile(lat, 0.99))
		if r0, r1 := t0.Replication, t1.Replication; r0 != nil && r1 != nil {
			lag := histDiff(r0.LagUs, r1.LagUs)
			q := func(x float64) int {
				v, _ := mgmt.BoundedQuantile(lag, r1.LagBoundsUs, x)
				return v
			}
			fmt.Fprintf(os.Stderr, "; repl records %d, batches %d/%d, bytes %d/%d, collapsed %d, resyncs %d, resends %d, bulk %d, lag p50 < %d µs p99 < %d µs",
				r1.Records-r0.Records, r1.Batches[0]-r0.Batches[0], r1.Batches[1]-r0.Batches[1],
				r1.Bytes[0]-r0.Bytes[0], r1.Bytes[1]-r0.Bytes[1], r1.Collapsed-r0.Collapsed,
				r1.Resyncs-r0.Resyncs, r1.Resends-r0.Resends, r1.Bulk[0]-r0.Bulk[0], q(0.5), q(0.99))
		}
		fmt.Fprintln(os.Stderr)
	}
}
