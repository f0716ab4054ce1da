//go:build linux

// Command benchrouter measures the ringway data plane against Linux kernel
// forwarding on the same reference lab, in one run, interleaved: 64-byte UDP
// packets per second and TCP throughput (iperf3) from the client to the
// server through one gateway node. Four modes: ringway and plain kernel
// forwarding (stateless), ringway with its stateful filter and kernel
// forwarding with an nftables rule set of the same meaning (conntrack on).
// It prints a table and writes JSON (default bench/out/router.json). Run it
// as root: `make bench-router`.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ringway/ringway/forward"
	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/lab/workload"
	"github.com/ringway/ringway/router"
)

type run struct {
	Round          int     `json:"round"`
	Mode           string  `json:"mode"` // "ringway", "kernel", "ringway-stateful" or "kernel-nft"
	OfferedPPS     float64 `json:"offered_pps"`
	PPS            float64 `json:"pps"`                 // 64-byte frames delivered to the server per second
	HostCPUNsPerPk float64 `json:"host_cpu_ns_per_pkt"` // all CPUs' busy time / delivered packets (generator and receiver included)
	ProcCPUNsPerPk float64 `json:"proc_cpu_ns_per_pkt"` // this process (router + generator goroutine) / delivered packets
	TCPGbps        float64 `json:"tcp_gbps"`            // iperf3 receiver throughput
	TCPRetransmits int     `json:"tcp_retransmits"`     // iperf3 sender retransmits
	RouterDrops    uint64  `json:"router_drops"`        // ringway: frames dropped with a reason during the round
	SocketDrops    uint64  `json:"socket_drops"`        // ringway: frames the AF_PACKET receive queues overflowed
	BatchFill      float64 `json:"rx_batch_fill"`       // ringway: ext0 frames per recvmmsg during the pps window
	check          string  // stateful modes: the probe's and the rules' counts, for the log
}

type summary struct {
	PPS            float64 `json:"pps"`
	TCPGbps        float64 `json:"tcp_gbps"`
	ProcCPUNsPerPk float64 `json:"proc_cpu_ns_per_pkt"`
	HostCPUNsPerPk float64 `json:"host_cpu_ns_per_pkt"`
}

type report struct {
	Date         time.Time          `json:"date"`
	Kernel       string             `json:"kernel"`
	CPUs         int                `json:"cpus"`
	LoadAvg      string             `json:"loadavg_at_start"`
	Rounds       int                `json:"rounds"`
	Duration     float64            `json:"seconds_per_measurement"`
	Runs         []run              `json:"runs"`
	Median       map[string]summary `json:"median"`
	PPSRatio     float64            `json:"pps_ratio"` // ringway / kernel
	TCPRatio     float64            `json:"tcp_ratio"`
	CPURatio     float64            `json:"host_cpu_per_pkt_ratio"`
	ProcCPURatio float64            `json:"proc_cpu_per_pkt_ratio"`
	PPSTarget    float64            `json:"pps_ratio_target"`
	TCPTarget    float64            `json:"tcp_ratio_target"`
	Modes        []string           `json:"modes"`
	// ringway-stateful / kernel-nft (0 unless both ran)
	StatefulPPSRatio     float64 `json:"stateful_pps_ratio,omitempty"`
	StatefulTCPRatio     float64 `json:"stateful_tcp_ratio,omitempty"`
	StatefulCPURatio     float64 `json:"stateful_host_cpu_per_pkt_ratio,omitempty"`
	StatefulProcCPURatio float64 `json:"stateful_proc_cpu_per_pkt_ratio,omitempty"`
	StatefulTarget       float64 `json:"stateful_ratio_target,omitempty"`
	// The filter's cost per packet: proc CPU ns/pkt of ringway-stateful
	// minus ringway's (medians, 0 unless both ran), and Filter.Pass alone
	// on the generator's frames in a loop on one goroutine.
	FilterProcCPUNsPerPk float64  `json:"filter_proc_cpu_ns_per_pkt_delta,omitempty"`
	FilterPassNsPerPk    float64  `json:"filter_pass_ns_per_pkt,omitempty"`
	Notes                []string `json:"notes"`
}

// allModes are the modes in their order within a round (odd rounds; even
// rounds run them backwards).
var allModes = []string{"ringway", "kernel", "ringway-stateful", "kernel-nft"}

func parseModes(s string) ([]string, error) {
	var ms []string
	for _, m := range strings.Split(s, ",") {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		if !slices.Contains(allModes, m) {
			return nil, fmt.Errorf("unknown mode %q (modes: %s)", m, strings.Join(allModes, ","))
		}
		if slices.Contains(ms, m) {
			return nil, fmt.Errorf("mode %q given twice", m)
		}
		ms = append(ms, m)
	}
	if len(ms) == 0 {
		return nil, errors.New("no mode")
	}
	return ms, nil
}

func main() {
	rounds := flag.Int("rounds", 3, "measurement rounds; each measures every mode once, order alternating")
	modeList := flag.String("modes", strings.Join(allModes, ","), "comma-separated modes to interleave: "+strings.Join(allModes, ", "))
	dur := flag.Duration("duration", 3*time.Second, "length of each pps and TCP measurement")
	out := flag.String("out", "bench/out/router.json", "JSON report path")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the ringway pps measurements to this file")
	flag.IntVar(&rxQueues, "rxqueues", router.DefaultConfig().RxQueues, "router receive goroutines per NIC")
	flag.IntVar(&batchSize, "batch", router.DefaultConfig().Batch, "router frames per recvmmsg/sendmmsg")
	flag.IntVar(&rxRing, "rxring", router.DefaultConfig().RxRing, "router receive ring bytes per socket (TPACKET_V2); 0 reads with recvmmsg")
	flag.IntVar(&txRing, "txring", router.DefaultConfig().TxRing, "router transmit ring bytes per NIC (TPACKET_V2) for frames up to 2 KiB; 0 sends everything with sendmmsg")
	flag.Parse()
	modes, err := parseModes(*modeList)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrouter:", err)
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "benchrouter builds network namespaces: run it as root (make bench-router)")
		os.Exit(2)
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		fmt.Fprintln(os.Stderr, "iperf3 not found: apt-get install -y iperf3 (make bench-router does it)")
		os.Exit(2)
	}
	rep, err := bench(modes, *rounds, *dur, *cpuprofile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrouter:", err)
		os.Exit(1)
	}
	printTable(os.Stdout, rep)
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("wrote", *out)
}

func bench(modes []string, rounds int, dur time.Duration, cpuprofile string) (*report, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := make([]byte, 2)
	rand.Read(b)
	stateDir, err := os.MkdirTemp("", "benchrouter")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stateDir)
	l, err := lab.Build(ctx, lab.Spec{Prefix: "rtrb" + hex.EncodeToString(b), Nodes: 1, StateDir: stateDir})
	if err != nil {
		return nil, fmt.Errorf("build lab: %w", err)
	}
	defer l.Close()
	node := l.Node(1)
	nsh, err := netns.GetFromPath(l.NetnsPath(node))
	if err != nil {
		return nil, err
	}
	defer nsh.Close()
	gwMAC, err := l.HardwareAddr(node, "ext0")
	if err != nil {
		return nil, err
	}
	clientMAC, err := l.HardwareAddr(l.Client(), lab.HostIf)
	if err != nil {
		return nil, err
	}
	// A UDP sink on the server so the packets are not answered with ICMP.
	var sink net.PacketConn
	if err := l.Do(l.Server(), func() error {
		sink, err = net.ListenPacket("udp4", netip.AddrPortFrom(lab.ServerAddr, 9).String())
		return err
	}); err != nil {
		return nil, err
	}
	defer sink.Close()
	iperfSrv := exec.Command("iperf3", "-s", "-B", lab.ServerAddr.String(), "-p", strconv.Itoa(iperfPort))
	iperfSrv.Stdout, iperfSrv.Stderr = io.Discard, io.Discard
	if err := l.Start(l.Server(), iperfSrv); err != nil {
		return nil, fmt.Errorf("start iperf3 server: %w", err)
	}
	time.Sleep(300 * time.Millisecond)

	gen, err := newGenerator(l, gwMAC, clientMAC)
	if err != nil {
		return nil, err
	}
	defer gen.close()

	load, _ := os.ReadFile("/proc/loadavg")
	var uts unix.Utsname
	unix.Uname(&uts)
	rep := &report{Date: time.Now().UTC(), Kernel: unix.ByteSliceToString(uts.Release[:]), CPUs: runtime.NumCPU(),
		LoadAvg: strings.TrimSpace(string(load)), Rounds: rounds, Duration: dur.Seconds(), PPSTarget: 0.8, TCPTarget: 0.5,
		Modes: modes}
	var prof *os.File
	if cpuprofile != "" {
		if prof, err = os.Create(cpuprofile); err != nil {
			return nil, err
		}
		defer prof.Close()
	}
	for r := 1; r <= rounds; r++ {
		order := slices.Clone(modes)
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, m := range order {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			res, err := measure(ctx, l, nsh, gen, m, dur, r, prof)
			if err != nil {
				return nil, fmt.Errorf("round %d %s: %w", r, m, err)
			}
			fmt.Fprintf(os.Stderr, "round %d %-16s  %9.0f pps (offered %9.0f, socket drops %d, batch fill %.1f)  %6.0f ns host CPU/pkt  %6.2f Gbit/s TCP (%d retr)\n",
				r, m, res.PPS, res.OfferedPPS, res.SocketDrops, res.BatchFill, res.HostCPUNsPerPk, res.TCPGbps, res.TCPRetransmits)
			if res.check != "" {
				fmt.Fprintln(os.Stderr, "  "+res.check)
			}
			rep.Runs = append(rep.Runs, res)
		}
	}
	rep.Median = map[string]summary{}
	for _, m := range modes {
		var pps, tcp, cpu, pcpu []float64
		for _, x := range rep.Runs {
			if x.Mode == m {
				pps, tcp, cpu, pcpu = append(pps, x.PPS), append(tcp, x.TCPGbps), append(cpu, x.HostCPUNsPerPk), append(pcpu, x.ProcCPUNsPerPk)
			}
		}
		rep.Median[m] = summary{PPS: median(pps), TCPGbps: median(tcp), HostCPUNsPerPk: median(cpu), ProcCPUNsPerPk: median(pcpu)}
	}
	has := func(m string) bool { return slices.Contains(modes, m) }
	if has("ringway") && has("kernel") {
		rw, k := rep.Median["ringway"], rep.Median["kernel"]
		rep.PPSRatio, rep.TCPRatio, rep.CPURatio = rw.PPS/k.PPS, rw.TCPGbps/k.TCPGbps, rw.HostCPUNsPerPk/k.HostCPUNsPerPk
		rep.ProcCPURatio = rw.ProcCPUNsPerPk / k.ProcCPUNsPerPk
	}
	if has("ringway-stateful") && has("kernel-nft") {
		rw, k := rep.Median["ringway-stateful"], rep.Median["kernel-nft"]
		rep.StatefulPPSRatio, rep.StatefulTCPRatio = rw.PPS/k.PPS, rw.TCPGbps/k.TCPGbps
		rep.StatefulCPURatio, rep.StatefulProcCPURatio = rw.HostCPUNsPerPk/k.HostCPUNsPerPk, rw.ProcCPUNsPerPk/k.ProcCPUNsPerPk
		rep.StatefulTarget = 1.0
	}
	if has("ringway") && has("ringway-stateful") {
		rep.FilterProcCPUNsPerPk = rep.Median["ringway-stateful"].ProcCPUNsPerPk - rep.Median["ringway"].ProcCPUNsPerPk
	}
	if has("ringway-stateful") {
		if rep.FilterPassNsPerPk, err = filterPassCost(gen); err != nil {
			return nil, err
		}
	}
	rep.Notes = []string{
		"pps: 60-byte frames (64 on the wire with FCS) sent with sendmmsg on AF_PACKET in the client namespace at the highest rate the generator reaches, counted at the server's eth0 (rx_packets) during the window",
		"proc CPU: this process (router goroutines in ringway mode, the generator in both) per delivered packet; on veth, forwarding runs in softirq on the sending CPU, so in kernel mode it is charged to the generator",
		"host CPU: /proc/stat busy time of the whole host per delivered packet; the host is shared with other busy engineers, so it is an upper bound",
		"TCP: iperf3 -t duration, one stream, receiver throughput; ringway passes GSO super-frames through with virtio-net headers",
		"modes interleave (in -modes order, then backwards, ...) so all see the same background load; medians over rounds",
		fmt.Sprintf("stateful modes: new flows accepted only from ext0 to int0 for UDP port %d (the generator) and TCP port %d (iperf3), default drop; ringway: forward.Filter as router.Config.Filter; kernel-nft: table inet filter, chain forward policy drop, ct state established,related accept, the same two accept rules (conntrack on); checked each round by %d probe frames to UDP port %d, which must be dropped and counted",
			genPort, iperfPort, probeFrames, probePort),
		"the generator's UDP flows are never answered, so in kernel-nft every packet is ct state new and matches the UDP accept rule after the ct state rule; in ringway-stateful every packet finds its (unreplied) flow in the table",
		"filter_pass_ns_per_pkt: forward.Filter.Pass alone on the generator's 64 established flows, in a loop on one goroutine (hot caches); filter_proc_cpu_ns_per_pkt_delta: proc CPU ns/pkt of ringway-stateful minus ringway's, medians",
	}
	return rep, nil
}

var (
	batchSize = 32
	rxQueues  = 1
	rxRing    = 0
	txRing    = 0
)

func measure(ctx context.Context, l *lab.Lab, nsh netns.NsHandle, gen *generator, mode string, dur time.Duration, round int, prof *os.File) (res run, err error) {
	res = run{Round: round, Mode: mode}
	node := l.Node(1)
	var rt *router.Router
	var done chan error
	var filter *forward.Filter
	var nft *nftRuleset
	switch mode {
	case "ringway", "ringway-stateful":
		cfg := router.DefaultConfig()
		cfg.Netns = nsh
		cfg.Batch = batchSize
		cfg.RxQueues = rxQueues
		cfg.RxRing = rxRing
		cfg.TxRing = txRing
		cfg.Links = []router.Link{
			{Name: "ext0", Primary: netip.PrefixFrom(lab.NodeExt(1), 24)},
			{Name: "int0", Primary: netip.PrefixFrom(lab.NodeInt(1), 24)},
		}
		cfg.VIPs = append(lab.VIPs(lab.ExtPrefix), lab.VIPs(lab.IntPrefix)...)
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		var err error
		if mode == "ringway-stateful" {
			if filter, err = ringwayFilter(cfg.VIPs); err != nil {
				return res, err
			}
			cfg.Filter = filter
		}
		if rt, err = router.New(cfg); err != nil {
			return res, err
		}
		done = make(chan error, 1)
		rctx, cancel := context.WithCancel(ctx)
		go func() { done <- rt.Run(rctx) }()
		defer func() {
			cancel()
			<-done
			rt.Close()
		}()
		rt.SetOwned(cfg.VIPs)
	case "kernel", "kernel-nft":
		if err := l.SetSysctl(node, "net.ipv4.ip_forward", "1"); err != nil {
			return res, err
		}
		for _, a := range []struct{ dev, p string }{{"ext0", "203.0.113.91/24"}, {"int0", "198.51.100.91/24"}} {
			if err := l.AddAddr(node, a.dev, netip.MustParsePrefix(a.p)); err != nil {
				return res, err
			}
		}
		defer func() {
			l.SetSysctl(node, "net.ipv4.ip_forward", "0")
			l.DelAddr(node, "ext0", netip.MustParsePrefix("203.0.113.91/24"))
			l.DelAddr(node, "int0", netip.MustParsePrefix("198.51.100.91/24"))
		}()
		if mode == "kernel-nft" {
			if nft, err = installNft(nsh); err != nil {
				return res, err
			}
			defer func() {
				if e := nft.remove(); e != nil && err == nil {
					err = e
				}
			}()
		}
	}
	// TCP first: it also resolves every ARP entry on the path.
	gbps, retr, err := iperf(ctx, l, dur)
	if err != nil {
		return res, err
	}
	res.TCPGbps, res.TCPRetransmits = gbps, retr
	// The stateful modes must drop a flow no rule accepts.
	var probe string
	var fs0 forward.Stats
	var nc0 nftCounters
	switch {
	case filter != nil:
		if probe, err = probeFilter(ctx, gen, func() uint64 { return filter.Stats().Drops[forward.ReasonRule] }); err != nil {
			return res, err
		}
		fs0 = filter.Stats()
	case nft != nil:
		if probe, err = probeFilter(ctx, gen, func() uint64 { c, _ := nft.counters(); return c.Drop }); err != nil {
			return res, err
		}
		if nc0, err = nft.counters(); err != nil {
			return res, err
		}
	}
	var drops0, sock0 uint64
	var st0 router.Stats
	if rt != nil {
		st0 = rt.Stats()
		drops0, sock0 = totalDrops(st0)
	}
	if prof != nil && mode == "ringway" {
		if round == 1 {
			pprof.StartCPUProfile(prof)
		}
	}
	rx0, err := serverRx(l)
	if err != nil {
		return res, err
	}
	cpu0 := hostBusy()
	var ru0 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	t0 := time.Now()
	sent := gen.blast(ctx, dur)
	el := time.Since(t0)
	time.Sleep(50 * time.Millisecond) // let queues drain into the count
	rx1, err := serverRx(l)
	if err != nil {
		return res, err
	}
	cpu1 := hostBusy()
	var ru1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	if prof != nil && mode == "ringway" && round == 1 {
		pprof.StopCPUProfile()
	}
	got := float64(rx1 - rx0)
	res.OfferedPPS = float64(sent) / el.Seconds()
	res.PPS = got / el.Seconds()
	if got > 0 {
		res.HostCPUNsPerPk = float64(cpu1-cpu0) / got
		res.ProcCPUNsPerPk = float64(rusageNs(ru1)-rusageNs(ru0)) / got
	}
	switch {
	case filter != nil:
		fs1 := filter.Stats()
		res.check = fmt.Sprintf("filter: %s; in the pps window %d passed, %d new flows; whole mode (TCP included): %d passed, %d new flows, %d rule drops, %d flows in the table",
			probe, fs1.Passed-fs0.Passed, fs1.NewFlows-fs0.NewFlows, fs1.Passed, fs1.NewFlows, fs1.Drops[forward.ReasonRule], fs1.Flows)
		// (the server's count also holds a few frames the filter never sees: ARP)
		if float64(fs1.Passed-fs0.Passed) < 0.99*got {
			return res, fmt.Errorf("the filter passed %d packets, the server got %.0f: is it on the path?", fs1.Passed-fs0.Passed, got)
		}
	case nft != nil:
		nc1, err := nft.counters()
		if err != nil {
			return res, err
		}
		res.check = fmt.Sprintf("nftables: %s; in the pps window udp dport %d accepted %d, ct established,related %d, dropped %d; whole mode (TCP included): ct established,related %d, tcp dport %d %d, udp dport %d %d, dropped %d",
			probe, genPort, nc1.UDP-nc0.UDP, nc1.Established-nc0.Established, nc1.Drop-nc0.Drop,
			nc1.Established, iperfPort, nc1.TCP, genPort, nc1.UDP, nc1.Drop)
		if float64(nc1.UDP-nc0.UDP) < 0.99*got {
			return res, fmt.Errorf("the UDP accept rule counted %d packets, the server got %.0f: does the rule set apply?", nc1.UDP-nc0.UDP, got)
		}
	}
	if rt != nil {
		st1 := rt.Stats()
		d, s := totalDrops(st1)
		res.RouterDrops, res.SocketDrops = d-drops0, s-sock0
		if b := st1.Links[0].RxBatches - st0.Links[0].RxBatches; b > 0 {
			res.BatchFill = float64(st1.Links[0].RxFrames-st0.Links[0].RxFrames) / float64(b)
		}
	}
	return res, nil
}

// totalDrops returns the frames dropped with a reason and the frames the
// AF_PACKET receive queues overflowed.
func totalDrops(s router.Stats) (reasons, socket uint64) {
	for _, l := range s.Links {
		socket += l.SocketDrops
		for _, v := range l.Drops {
			reasons += v
		}
	}
	return reasons, socket
}

func rusageNs(r unix.Rusage) int64 {
	return r.Utime.Nano() + r.Stime.Nano()
}

// hostBusy returns the busy CPU time of the whole host in ns (/proc/stat:
// user, nice, system, irq, softirq, steal).
func hostBusy() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line := strings.SplitN(string(b), "\n", 2)[0]
	f := strings.Fields(line)
	var busy int64
	for i, idx := range []int{1, 2, 3, 6, 7, 8} {
		_ = i
		if idx < len(f) {
			v, _ := strconv.ParseInt(f[idx], 10, 64)
			busy += v
		}
	}
	return busy * int64(time.Second) / 100 // USER_HZ = 100
}

func serverRx(l *lab.Lab) (uint64, error) {
	h, err := l.Netlink(l.Server())
	if err != nil {
		return 0, err
	}
	defer h.Close()
	lk, err := h.LinkByName(lab.HostIf)
	if err != nil {
		return 0, err
	}
	return lk.Attrs().Statistics.RxPackets, nil
}

func iperf(ctx context.Context, l *lab.Lab, dur time.Duration) (gbps float64, retr int, err error) {
	var out []byte
	err = l.Do(l.Client(), func() error {
		cmd := exec.CommandContext(ctx, "iperf3", "-c", lab.ServerAddr.String(), "-B", lab.ClientAddr.String(), "-p", strconv.Itoa(iperfPort),
			// iperf3 -t takes whole seconds; 0 (from "0.5") would run forever
			"-t", strconv.Itoa(max(1, int(math.Ceil(dur.Seconds())))), "-J")
		var e error
		out, e = cmd.Output()
		return e
	})
	if err != nil {
		return 0, 0, fmt.Errorf("iperf3 client: %w: %s", err, out)
	}
	return workload.ParseIperf3(out)
}

// generator sends 64-byte (60 without FCS) UDP frames from the client to
// the server through the gateway's MAC, with sendmmsg on an AF_PACKET
// socket in the client namespace: a kernel UDP socket could not offer more
// than the forwarder takes on this machine.
type generator struct {
	fd   int // blocking, outside the netpoller (see router/link_linux.go txfd)
	msgs []unix.Mmsghdr
	iovs []unix.Iovec
	bufs [][]byte
}

func newGenerator(l *lab.Lab, gw, src net.HardwareAddr) (*generator, error) {
	g := &generator{}
	err := l.Do(l.Client(), func() error {
		ifi, err := net.InterfaceByName(lab.HostIf)
		if err != nil {
			return err
		}
		// Protocol 0: the socket only sends and receives nothing.
		if g.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(g.fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return err
		}
		return unix.Bind(g.fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index})
	})
	if err != nil {
		return nil, err
	}
	const n = 64
	g.msgs, g.iovs, g.bufs = make([]unix.Mmsghdr, n), make([]unix.Iovec, n), make([][]byte, n)
	for i := range g.bufs {
		f := make([]byte, 60)
		copy(f[0:6], gw)
		copy(f[6:12], src)
		binary.BigEndian.PutUint16(f[12:], 0x0800)
		ip := f[14:]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], 46)
		ip[8] = 64
		ip[9] = 17
		s, d := lab.ClientAddr.As4(), lab.ServerAddr.As4()
		copy(ip[12:16], s[:])
		copy(ip[16:20], d[:])
		var sum uint32
		for j := 0; j < 20; j += 2 {
			sum += uint32(binary.BigEndian.Uint16(ip[j:]))
		}
		for sum>>16 != 0 {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
		udp := ip[20:]
		binary.BigEndian.PutUint16(udp[0:], uint16(20000+i)) // distinct flows
		binary.BigEndian.PutUint16(udp[2:], 9)
		binary.BigEndian.PutUint16(udp[4:], 26)
		// UDP checksum 0: none (RFC 768), valid for IPv4.
		g.bufs[i] = f
		g.iovs[i].Base = &f[0]
		g.iovs[i].SetLen(len(f))
		g.msgs[i].Hdr.Iov = &g.iovs[i]
		g.msgs[i].Hdr.SetIovlen(1)
	}
	return g, nil
}

// probeFrames is how many frames probeFilter sends.
const probeFrames = 100

// probeFilter sends probeFrames frames of one UDP flow to probePort, which
// no rule accepts, and waits until dropped (a counter) has grown by as many.
// It describes the result.
func probeFilter(ctx context.Context, g *generator, dropped func() uint64) (string, error) {
	d0 := dropped()
	sent, err := g.probe(probeFrames)
	if err != nil {
		return "", fmt.Errorf("probe: %w", err)
	}
	var n uint64
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end) && ctx.Err() == nil; time.Sleep(20 * time.Millisecond) {
		if n = dropped() - d0; n >= uint64(sent) {
			break
		}
	}
	if n < uint64(sent) {
		return "", fmt.Errorf("probe to UDP port %d: %d of %d frames counted as dropped: the rules do not apply", probePort, n, sent)
	}
	return fmt.Sprintf("probe to UDP port %d: %d/%d dropped", probePort, n, sent), nil
}

// filterPassCost returns the ns per forward.Filter.Pass call for the
// generator's frames (established flows), on one goroutine.
func filterPassCost(g *generator) (float64, error) {
	f, err := ringwayFilter(append(lab.VIPs(lab.ExtPrefix), lab.VIPs(lab.IntPrefix)...))
	if err != nil {
		return 0, err
	}
	ips := make([][]byte, len(g.bufs))
	for i, b := range g.bufs {
		ips[i] = b[14:]
		if !f.Pass(ips[i], 0, 1, 0) {
			return 0, errors.New("filter cost: the filter drops the generator's frames")
		}
	}
	const n = 1 << 22
	t0 := time.Now()
	for i := range n {
		if !f.Pass(ips[i%len(ips)], 0, 1, int64(i)) {
			return 0, errors.New("filter cost: the filter dropped a generator frame")
		}
	}
	return float64(time.Since(t0).Nanoseconds()) / n, nil
}

// blast sends as fast as sendmmsg goes for d and returns frames sent.
func (g *generator) blast(ctx context.Context, d time.Duration) uint64 {
	var sent uint64
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(g.fd), uintptr(unsafe.Pointer(&g.msgs[0])), uintptr(len(g.msgs)), 0, 0, 0)
		if e == 0 {
			sent += uint64(r)
		}
	}
	return sent
}

// probe sends n copies of one frame of the generator's to UDP port
// probePort, one at a time, and returns how many went out.
func (g *generator) probe(n int) (int, error) {
	f := slices.Clone(g.bufs[0])
	binary.BigEndian.PutUint16(f[14+20:], 30000)
	binary.BigEndian.PutUint16(f[14+22:], probePort)
	sent := 0
	for range n {
		if _, err := unix.Write(g.fd, f); err != nil {
			return sent, err
		}
		sent++
	}
	return sent, nil
}

func (g *generator) close() { unix.Close(g.fd) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func printTable(w io.Writer, r *report) {
	fmt.Fprintf(w, "\nrouter data plane: one node, client → server, %d rounds × %.0f s, kernel %s, %d CPUs, load %s\n\n",
		r.Rounds, r.Duration, r.Kernel, r.CPUs, r.LoadAvg)
	fmt.Fprintf(w, "%-30s %12s %12s %16s %16s\n", "", "64B UDP pps", "TCP Gbit/s", "proc CPU ns/pkt", "host CPU ns/pkt")
	for _, m := range r.Modes {
		s := r.Median[m]
		fmt.Fprintf(w, "%-30s %12.0f %12.2f %16.0f %16.0f\n", m, s.PPS, s.TCPGbps, s.ProcCPUNsPerPk, s.HostCPUNsPerPk)
	}
	if r.PPSRatio != 0 {
		fmt.Fprintf(w, "%-30s %12.2f %12.2f %16.2f %16.2f   (targets: pps ≥ %.1f, TCP ≥ %.1f)\n", "ringway / kernel",
			r.PPSRatio, r.TCPRatio, r.ProcCPURatio, r.CPURatio, r.PPSTarget, r.TCPTarget)
	}
	if r.StatefulPPSRatio != 0 {
		fmt.Fprintf(w, "%-30s %12.2f %12.2f %16.2f %16.2f   (targets: pps ≥ %.1f, TCP ≥ %.1f)\n", "ringway-stateful / kernel-nft",
			r.StatefulPPSRatio, r.StatefulTCPRatio, r.StatefulProcCPURatio, r.StatefulCPURatio, r.StatefulTarget, r.StatefulTarget)
	}
	if r.FilterProcCPUNsPerPk != 0 {
		fmt.Fprintf(w, "filter cost: %.0f proc CPU ns/pkt (ringway-stateful − ringway, medians)\n", r.FilterProcCPUNsPerPk)
	}
	if r.FilterPassNsPerPk != 0 {
		fmt.Fprintf(w, "filter cost: %.0f ns per Filter.Pass alone (generator's 64 flows, one goroutine)\n", r.FilterPassNsPerPk)
	}
	fmt.Fprintln(w)
}
