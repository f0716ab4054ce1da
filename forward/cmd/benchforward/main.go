//go:build linux

// Command benchforward measures symmetric routing's tunnel on the reference
// lab (docs/forward.md "Measured: the tunnel"): two ringway nodes with the
// filter on, and the server's gateway VIP moved, round after round,
// between n1 (same owner: both gateways on n1, no tunnel) and n2 (split
// owners: every reply enters at n2 and crosses the tunnel to n1, the
// handler). Per round and mode: the round-trip time of 64-byte UDP
// request/response exchanges (the added latency of the tunnel hop is split
// minus same) and the throughput of a TCP transfer from the server to the
// client (iperf3 -R: the tunnelled direction carries the data). It also
// computes the directory rows a membership change moves against the
// theoretical minimum. Modes are interleaved (the machine is shared). It
// prints a table and writes JSON (default bench/out/forward.json). Run as
// root: `make bench-forward`.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/forward"
	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/lab/workload"
	"github.com/ringway/ringway/mgmt"
)

type round struct {
	Round    int     `json:"round"`
	Mode     string  `json:"mode"` // "same" or "split"
	RTTP50us float64 `json:"rtt_p50_us"`
	RTTP99us float64 `json:"rtt_p99_us"`
	Lost     int     `json:"rr_lost"`
	TCPGbps  float64 `json:"tcp_gbps"` // iperf3 -R receiver throughput
	Retrans  int     `json:"tcp_retransmits"`
	// RRCPUus is the CPU time both nodes used (user + system, from
	// /proc) per request/response exchange; TCPCPUsPerGB their CPU
	// seconds per GB the TCP transfer moved.
	RRCPUus      float64 `json:"rr_node_cpu_us_per_exchange"`
	TCPCPUsPerGB float64 `json:"tcp_node_cpu_s_per_gb,omitempty"`
}

type moved struct {
	Change      string  `json:"change"`
	RowsMoved   int     `json:"rows_moved"`
	Fraction    float64 `json:"fraction"`
	Theoretical float64 `json:"theoretical"`
	Ratio       float64 `json:"ratio"` // fraction / theoretical
}

type report struct {
	Date       time.Time `json:"date"`
	LoadAvg    string    `json:"loadavg_at_start"`
	Rounds     []round   `json:"rounds"`
	AddedP50us float64   `json:"added_latency_p50_us"` // median over rounds of split - same (paired)
	AddedP99us float64   `json:"added_latency_p99_us"`
	TCPRatio   float64   `json:"tcp_ratio"` // median over rounds of split / same (paired)
	// CPU the nodes used, medians over rounds by mode: per
	// request/response exchange, and per GB of the TCP transfer.
	RRCPUus      map[string]float64 `json:"rr_node_cpu_us_per_exchange"`
	TCPCPUsPerGB map[string]float64 `json:"tcp_node_cpu_s_per_gb"`
	Moved        []moved            `json:"rows_moved"`
	Exchanges    int                `json:"rr_exchanges_per_round"`
	TCPSeconds   float64            `json:"tcp_seconds_per_round"`
	TargetP50us  float64            `json:"target_added_p50_us"`
	TargetP99us  float64            `json:"target_added_p99_us"`
	TargetTCP    float64            `json:"target_tcp_ratio"`
	MSSClamped   uint64             `json:"mss_clamped"`
	// Coalesced and SuperFrames: n1's tunnelled TCP segments sent on in
	// GSO super-frames it built, and those frames.
	Coalesced   uint64 `json:"coalesced"`
	SuperFrames uint64 `json:"super_frames"`
	TunnelFrags uint64 `json:"frag_needed"`
	TunnelDrops string `json:"tunnel_drops,omitempty"`
	// TunnelSent and TunnelSentBytes are n2's data packets into the
	// tunnel (the replies of every split round) and their bytes: their
	// ratio shows whether super-packets crossed whole.
	TunnelSent      uint64 `json:"tunnel_sent"`
	TunnelSentBytes uint64 `json:"tunnel_sent_bytes"`
	RingwayBuild    string `json:"binary"`
	// UDPRcvbufErrors are the nodes' kernel counts of UDP datagrams
	// dropped for a full socket receive buffer (the tunnel's sockets).
	UDPRcvbufErrors map[string]uint64 `json:"udp_rcvbuf_errors"`
}

func main() {
	bin := flag.String("bin", "bin/ringway", "the ringway binary (`make build`)")
	rounds := flag.Int("rounds", 3, "rounds; each measures both modes")
	n := flag.Int("rr", 3000, "request/response exchanges per round and mode")
	secs := flag.Duration("tcp", 3*time.Second, "TCP transfer per round and mode (0: none, latency only)")
	out := flag.String("out", "bench/out/forward.json", "JSON report")
	flag.StringVar(&profileDir, "profile", "", "write each node's CPU profile (ringway run --cpu-profile) to `DIR`/n1.pprof, n2.pprof")
	flag.Parse()
	if err := run(*bin, *rounds, *n, *secs, *out); err != nil {
		fmt.Fprintln(os.Stderr, "benchforward:", err)
		os.Exit(1)
	}
}

// profileDir is -profile: where the nodes write their CPU profiles.
var profileDir string

func run(bin string, rounds, n int, secs time.Duration, out string) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		return fmt.Errorf("iperf3 not found: install it (apt-get install iperf3)")
	}
	b := make([]byte, 3)
	rand.Read(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := lab.Build(ctx, lab.Spec{Prefix: "rwbf" + hex.EncodeToString(b), Nodes: 2, WireChecksums: true})
	if err != nil {
		return err
	}
	defer l.Close()
	if _, err := l.WriteCluster(func(_ int, c *config.Config) {
		c.VIPs = []config.VIPPolicy{
			{VIP: lab.ExtGateway, Preferred: "n1", Persistence: config.PersistPreferred},
			{VIP: lab.IntGateway, Preferred: "n1", Persistence: config.PersistPreferred},
		}
		server := []config.Net{{Prefix: netip.PrefixFrom(lab.ServerAddr, 32)}}
		ext := []config.Net{{Name: "ext"}}
		c.Filter.Enabled = true
		c.Filter.Default = config.ActionDrop
		c.Filter.Rules = []config.Rule{
			{Name: "rr", From: ext, To: server, Proto: config.ProtoUDP, Ports: []config.PortRange{{First: 7000, Last: 7000}}, Action: config.ActionAccept},
			{Name: "iperf", From: ext, To: server, Proto: config.ProtoTCP, Ports: []config.PortRange{{First: 5201, Last: 5201}}, Action: config.ActionAccept},
		}
	}); err != nil {
		return err
	}
	for i := 1; i <= 2; i++ {
		var args []string
		if profileDir != "" {
			dir, err := filepath.Abs(profileDir)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			args = []string{"--cpu-profile", filepath.Join(dir, fmt.Sprintf("n%d.pprof", i))}
		}
		if err := l.StartNode(bin, i, args...); err != nil {
			return err
		}
	}
	if err := waitOwner(l, "n1", 20*time.Second); err != nil {
		return err
	}
	echo, err := listenEcho(l)
	if err != nil {
		return err
	}
	defer echo.Close()
	if err := l.Start(l.Server(), exec.Command("iperf3", "-s")); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)

	load, _ := os.ReadFile("/proc/loadavg")
	rep := report{Date: time.Now().UTC(), LoadAvg: strings.TrimSpace(string(load)), Exchanges: n, TCPSeconds: secs.Seconds(),
		TargetP50us: 50, TargetP99us: 200, TargetTCP: 0.7, RingwayBuild: bin}
	var addedP50, addedP99, tcpRatio []float64
	rrCPU, tcpCPU := map[string][]float64{}, map[string][]float64{}
	for r := 1; r <= rounds; r++ {
		// Alternate the order within a round as well.
		modes := []string{"same", "split"}
		if r%2 == 0 {
			modes = []string{"split", "same"}
		}
		got := map[string]round{}
		for _, mode := range modes {
			owner := map[string]string{"same": "n1", "split": "n2"}[mode]
			if err := moveIntGateway(l, owner); err != nil {
				return err
			}
			rd := round{Round: r, Mode: mode}
			cpu0 := nodesCPU(l)
			rtts, lost, err := rr(l, n)
			if err != nil {
				return fmt.Errorf("round %d %s: %w", r, mode, err)
			}
			cpu1 := nodesCPU(l)
			rd.RTTP50us, rd.RTTP99us, rd.Lost = pct(rtts, 0.50), pct(rtts, 0.99), lost
			rd.RRCPUus = (cpu1 - cpu0).Seconds() * 1e6 / float64(n+50)
			if secs > 0 {
				if rd.TCPGbps, rd.Retrans, err = iperf(l, secs); err != nil {
					return fmt.Errorf("round %d %s: %w", r, mode, err)
				}
				if gb := rd.TCPGbps * secs.Seconds() / 8; gb > 0 {
					rd.TCPCPUsPerGB = (nodesCPU(l) - cpu1).Seconds() / gb
				}
			}
			fmt.Printf("round %d %-5s  rtt p50 %7.1f µs  p99 %7.1f µs  lost %d  node cpu %5.1f µs/exchange  tcp %6.3f Gbit/s (node cpu %.2f s/GB)  retransmits %d\n",
				r, mode, rd.RTTP50us, rd.RTTP99us, rd.Lost, rd.RRCPUus, rd.TCPGbps, rd.TCPCPUsPerGB, rd.Retrans)
			got[mode] = rd
			rrCPU[mode] = append(rrCPU[mode], rd.RRCPUus)
			tcpCPU[mode] = append(tcpCPU[mode], rd.TCPCPUsPerGB)
			rep.Rounds = append(rep.Rounds, rd)
		}
		addedP50 = append(addedP50, got["split"].RTTP50us-got["same"].RTTP50us)
		addedP99 = append(addedP99, got["split"].RTTP99us-got["same"].RTTP99us)
		if got["same"].TCPGbps > 0 {
			tcpRatio = append(tcpRatio, got["split"].TCPGbps/got["same"].TCPGbps)
		}
	}
	rep.AddedP50us, rep.AddedP99us, rep.TCPRatio = median(addedP50), median(addedP99), median(tcpRatio)
	rep.RRCPUus, rep.TCPCPUsPerGB = map[string]float64{}, map[string]float64{}
	for _, mode := range []string{"same", "split"} {
		rep.RRCPUus[mode], rep.TCPCPUsPerGB[mode] = median(rrCPU[mode]), median(tcpCPU[mode])
	}
	if st, err := status(l, 1); err == nil && st.Filter != nil && st.Filter.Tunnel != nil {
		rep.MSSClamped = st.Filter.Tunnel.MSSClamped
		rep.Coalesced, rep.SuperFrames = st.Filter.Tunnel.Coalesced, st.Filter.Tunnel.SuperFrames
	}
	if st, err := status(l, 2); err == nil && st.Filter != nil && st.Filter.Tunnel != nil {
		rep.TunnelFrags = st.Filter.Tunnel.FragNeeded
		rep.TunnelSent, rep.TunnelSentBytes = st.Filter.Tunnel.Sent, st.Filter.Tunnel.SentBytes
		if len(st.Filter.Tunnel.Drops) > 0 {
			rep.TunnelDrops = fmt.Sprint(st.Filter.Tunnel.Drops)
		}
	}
	rep.Moved = rowsMoved()
	rep.UDPRcvbufErrors = map[string]uint64{}
	for i := 1; i <= 2; i++ {
		rep.UDPRcvbufErrors[fmt.Sprintf("n%d", i)], _ = l.SNMP(l.Node(i), "Udp:", "RcvbufErrors") // 0 if absent
	}

	fmt.Printf("\n%-34s %10s %10s\n", "", "measured", "target")
	fmt.Printf("%-34s %8.1f µs %7.0f µs\n", "added latency of the tunnel, p50", rep.AddedP50us, rep.TargetP50us)
	fmt.Printf("%-34s %8.1f µs %7.0f µs\n", "added latency of the tunnel, p99", rep.AddedP99us, rep.TargetP99us)
	fmt.Printf("%-34s %10.2f %10.2f\n", "TCP throughput, tunnelled/direct", rep.TCPRatio, rep.TargetTCP)
	fmt.Printf("%-34s %7.1f µs / %.1f µs\n", "node CPU per exchange, same/split", rep.RRCPUus["same"], rep.RRCPUus["split"])
	fmt.Printf("%-34s %7.2f s / %.2f s\n", "node CPU per TCP GB, same/split", rep.TCPCPUsPerGB["same"], rep.TCPCPUsPerGB["split"])
	fmt.Printf("\n%-22s %10s %10s %12s %6s\n", "membership change", "rows moved", "fraction", "theoretical", "ratio")
	for _, m := range rep.Moved {
		fmt.Printf("%-22s %10d %9.2f%% %11.2f%% %6.3f\n", m.Change, m.RowsMoved, 100*m.Fraction, 100*m.Theoretical, m.Ratio)
	}
	fmt.Printf("(load average at start %s; MSS clamped %d, frag-needed %d, UDP receive buffer drops %v)\n", rep.LoadAvg, rep.MSSClamped, rep.TunnelFrags, rep.UDPRcvbufErrors)
	if rep.SuperFrames > 0 {
		fmt.Printf("(n1 sent %d tunnelled segments on in %d super-frames, %.1f each)\n", rep.Coalesced, rep.SuperFrames, float64(rep.Coalesced)/float64(rep.SuperFrames))
	}
	if rep.TunnelSent > 0 {
		fmt.Printf("(n2 into the tunnel: %d packets, %.0f bytes each on average)\n", rep.TunnelSent, float64(rep.TunnelSentBytes)/float64(rep.TunnelSent))
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	j, _ := json.MarshalIndent(rep, "", "  ")
	return os.WriteFile(out, append(j, '\n'), 0o644)
}

func status(l *lab.Lab, i int) (mgmt.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return l.NodeStatus(ctx, i)
}

// waitOwner waits until both nodes are members and the server's gateway
// is on node owner (the client's stays on n1).
func waitOwner(l *lab.Lab, owner string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		ok := true
		for i := 1; i <= 2; i++ {
			st, err := status(l, i)
			if err != nil || len(st.Members) != 2 || st.Owner(lab.IntGateway) != owner || st.Owner(lab.ExtGateway) != "n1" {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the server's gateway did not settle on %s within %v", owner, within)
}

// moveIntGateway moves the server's gateway VIP to node owner and waits
// for the move and the server's ARP cache to follow (the new owner's
// gratuitous ARP).
func moveIntGateway(l *lab.Lab, owner string) error {
	err := l.NodeAPI(1, func(cl *mgmt.Client) error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return cl.VIP(ctx, mgmt.VIPOp{Op: "move", VIP: lab.IntGateway, Node: owner})
	})
	if err != nil {
		return err
	}
	if err := waitOwner(l, owner, 10*time.Second); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)
	return nil
}

// listenEcho runs a UDP echo on the server's port 7000.
func listenEcho(l *lab.Lab) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := l.Do(l.Server(), func() (err error) {
		c, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 7000})
		return err
	})
	if err != nil {
		return nil, err
	}
	go func() {
		b := make([]byte, 2048)
		for {
			k, a, err := c.ReadFromUDPAddrPort(b)
			if err != nil {
				return
			}
			c.WriteToUDPAddrPort(b[:k], a)
		}
	}()
	return c, nil
}

// rr does n sequential 64-byte exchanges on a new flow from the client
// and returns their round-trip times (µs) and how many got no answer in
// 200 ms.
func rr(l *lab.Lab, n int) ([]float64, int, error) {
	var c net.Conn
	if err := l.Do(l.Client(), func() (err error) {
		c, err = net.Dial("udp4", netip.AddrPortFrom(lab.ServerAddr, 7000).String())
		return err
	}); err != nil {
		return nil, 0, err
	}
	defer c.Close()
	msg, b := make([]byte, 64), make([]byte, 128)
	var rtts []float64
	lost := 0
	for i := range n + 50 { // the first 50: warm-up (register, hint)
		binary.BigEndian.PutUint32(msg, uint32(i))
		c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			return nil, 0, err
		}
		for {
			k, err := c.Read(b)
			if err != nil {
				if i >= 50 {
					lost++
				}
				break
			}
			if k == 64 && binary.BigEndian.Uint32(b) == uint32(i) {
				if i >= 50 {
					rtts = append(rtts, float64(time.Since(t0).Nanoseconds())/1e3)
				}
				break
			}
		}
	}
	return rtts, lost, nil
}

// iperf runs iperf3 -R from the client for d and returns the receiver's
// throughput in Gbit/s and the sender's retransmits.
func iperf(l *lab.Lab, d time.Duration) (float64, int, error) {
	var outb []byte
	err := l.Do(l.Client(), func() (err error) {
		outb, err = exec.Command("iperf3", "-c", lab.ServerAddr.String(), "-R", "-t", fmt.Sprint(int(d.Seconds())), "-J").Output()
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("iperf3: %w", err)
	}
	return workload.ParseIperf3(outb)
}

// rowsMoved measures the directory rows whose authoritative node a leave
// and a join move, against the theoretical minimum (1/N of the rows for a
// leave from N members, 1/(N+1) for a join to N+1).
func rowsMoved() []moved {
	key, _ := forward.DirectoryKey(make([]byte, 32))
	members := func(n int) []uint16 {
		var ms []uint16
		for i := 1; i <= n; i++ {
			ms = append(ms, uint16(i))
		}
		return ms
	}
	var out []moved
	for _, n := range []int{2, 3, 5, 8, 64} {
		a, b := forward.NewDirectory(key, members(n)), forward.NewDirectory(key, members(n+1))
		for _, c := range []struct {
			name     string
			from, to *forward.Directory
			theory   float64
		}{
			{fmt.Sprintf("leave: %d → %d", n+1, n), b, a, 1 / float64(n+1)},
			{fmt.Sprintf("join: %d → %d", n, n+1), a, b, 1 / float64(n+1)},
		} {
			m := forward.Moved(c.from, c.to)
			f := float64(m) / forward.Rows
			out = append(out, moved{Change: c.name, RowsMoved: m, Fraction: f, Theoretical: c.theory, Ratio: f / c.theory})
		}
	}
	return out
}

// nodesCPU returns the CPU time (user + system) the processes of both
// node namespaces have used so far; 0 for what cannot be read.
func nodesCPU(l *lab.Lab) time.Duration {
	var sum time.Duration
	for i := 1; i <= 2; i++ {
		d, _ := l.CPU(l.Node(i))
		sum += d
	}
	return sum
}

func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func median(v []float64) float64 { return pct(v, 0.5) }
