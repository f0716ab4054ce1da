//go:build linux

// Command benchrouter measures the ringway data plane against Linux kernel
// forwarding on the same reference lab, in one run, interleaved: 64-byte UDP
// packets per second and TCP throughput (iperf3) from the client to the
// server through one gateway node. It prints a table and writes JSON
// (default bench/out/router.json). Run it as root: `make bench-router`.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
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

	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/router"
)

type run struct {
	Round          int     `json:"round"`
	Mode           string  `json:"mode"` // "ringway" or "kernel"
	OfferedPPS     float64 `json:"offered_pps"`
	PPS            float64 `json:"pps"`                 // 64-byte frames delivered to the server per second
	HostCPUNsPerPk float64 `json:"host_cpu_ns_per_pkt"` // all CPUs' busy time / delivered packets (generator and receiver included)
	ProcCPUNsPerPk float64 `json:"proc_cpu_ns_per_pkt"` // this process (router + generator goroutine) / delivered packets
	TCPGbps        float64 `json:"tcp_gbps"`            // iperf3 receiver throughput
	TCPRetransmits int     `json:"tcp_retransmits"`     // iperf3 sender retransmits
	RouterDrops    uint64  `json:"router_drops"`        // ringway: frames dropped with a reason during the round
	SocketDrops    uint64  `json:"socket_drops"`        // ringway: frames the AF_PACKET receive queues overflowed
	BatchFill      float64 `json:"rx_batch_fill"`       // ringway: ext0 frames per recvmmsg during the pps window
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
	Notes        []string           `json:"notes"`
}

func main() {
	rounds := flag.Int("rounds", 3, "measurement rounds; each measures ringway and kernel once, order alternating")
	dur := flag.Duration("duration", 3*time.Second, "length of each pps and TCP measurement")
	out := flag.String("out", "bench/out/router.json", "JSON report path")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the ringway pps measurements to this file")
	flag.IntVar(&rxQueues, "rxqueues", router.DefaultConfig().RxQueues, "router receive goroutines per NIC")
	flag.IntVar(&batchSize, "batch", router.DefaultConfig().Batch, "router frames per recvmmsg/sendmmsg")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "benchrouter builds network namespaces: run it as root (make bench-router)")
		os.Exit(2)
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		fmt.Fprintln(os.Stderr, "iperf3 not found: apt-get install -y iperf3 (make bench-router does it)")
		os.Exit(2)
	}
	rep, err := bench(*rounds, *dur, *cpuprofile)
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

func bench(rounds int, dur time.Duration, cpuprofile string) (*report, error) {
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
	iperfSrv := exec.Command("iperf3", "-s", "-B", lab.ServerAddr.String())
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
		LoadAvg: strings.TrimSpace(string(load)), Rounds: rounds, Duration: dur.Seconds(), PPSTarget: 0.8, TCPTarget: 0.5}
	var prof *os.File
	if cpuprofile != "" {
		if prof, err = os.Create(cpuprofile); err != nil {
			return nil, err
		}
		defer prof.Close()
	}
	for r := 1; r <= rounds; r++ {
		modes := []string{"ringway", "kernel"}
		if r%2 == 0 {
			modes = []string{"kernel", "ringway"}
		}
		for _, m := range modes {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			res, err := measure(ctx, l, nsh, gen, m, dur, r, prof)
			if err != nil {
				return nil, fmt.Errorf("round %d %s: %w", r, m, err)
			}
			fmt.Fprintf(os.Stderr, "round %d %-7s  %9.0f pps (offered %9.0f, socket drops %d, batch fill %.1f)  %6.0f ns host CPU/pkt  %6.2f Gbit/s TCP (%d retr)\n",
				r, m, res.PPS, res.OfferedPPS, res.SocketDrops, res.BatchFill, res.HostCPUNsPerPk, res.TCPGbps, res.TCPRetransmits)
			rep.Runs = append(rep.Runs, res)
		}
	}
	rep.Median = map[string]summary{}
	for _, m := range []string{"ringway", "kernel"} {
		var pps, tcp, cpu, pcpu []float64
		for _, x := range rep.Runs {
			if x.Mode == m {
				pps, tcp, cpu, pcpu = append(pps, x.PPS), append(tcp, x.TCPGbps), append(cpu, x.HostCPUNsPerPk), append(pcpu, x.ProcCPUNsPerPk)
			}
		}
		rep.Median[m] = summary{PPS: median(pps), TCPGbps: median(tcp), HostCPUNsPerPk: median(cpu), ProcCPUNsPerPk: median(pcpu)}
	}
	rw, k := rep.Median["ringway"], rep.Median["kernel"]
	rep.PPSRatio, rep.TCPRatio, rep.CPURatio = rw.PPS/k.PPS, rw.TCPGbps/k.TCPGbps, rw.HostCPUNsPerPk/k.HostCPUNsPerPk
	rep.ProcCPURatio = rw.ProcCPUNsPerPk / k.ProcCPUNsPerPk
	rep.Notes = []string{
		"pps: 60-byte frames (64 on the wire with FCS) sent with sendmmsg on AF_PACKET in the client namespace at the highest rate the generator reaches, counted at the server's eth0 (rx_packets) during the window",
		"proc CPU: this process (router goroutines in ringway mode, the generator in both) per delivered packet; on veth, forwarding runs in softirq on the sending CPU, so in kernel mode it is charged to the generator",
		"host CPU: /proc/stat busy time of the whole host per delivered packet; the host is shared with other busy engineers, so it is an upper bound",
		"TCP: iperf3 -t duration, one stream, receiver throughput; ringway passes GSO super-frames through with virtio-net headers",
		"modes interleave (ringway, kernel; then kernel, ringway; ...) so both see the same background load; medians over rounds",
	}
	return rep, nil
}

var (
	batchSize = 32
	rxQueues  = 1
)

func measure(ctx context.Context, l *lab.Lab, nsh netns.NsHandle, gen *generator, mode string, dur time.Duration, round int, prof *os.File) (run, error) {
	res := run{Round: round, Mode: mode}
	node := l.Node(1)
	var rt *router.Router
	var done chan error
	switch mode {
	case "ringway":
		cfg := router.DefaultConfig()
		cfg.Netns = nsh
		cfg.Batch = batchSize
		cfg.RxQueues = rxQueues
		cfg.Links = []router.Link{
			{Name: "ext0", Primary: netip.PrefixFrom(lab.NodeExt(1), 24)},
			{Name: "int0", Primary: netip.PrefixFrom(lab.NodeInt(1), 24)},
		}
		cfg.VIPs = append(lab.VIPs(lab.ExtPrefix), lab.VIPs(lab.IntPrefix)...)
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		var err error
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
	case "kernel":
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
	}
	// TCP first: it also resolves every ARP entry on the path.
	gbps, retr, err := iperf(ctx, l, dur)
	if err != nil {
		return res, err
	}
	res.TCPGbps, res.TCPRetransmits = gbps, retr
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
		cmd := exec.CommandContext(ctx, "iperf3", "-c", lab.ServerAddr.String(), "-B", lab.ClientAddr.String(),
			// iperf3 -t takes whole seconds; 0 (from "0.5") would run forever
			"-t", strconv.Itoa(max(1, int(math.Ceil(dur.Seconds())))), "-J")
		var e error
		out, e = cmd.Output()
		return e
	})
	if err != nil {
		return 0, 0, fmt.Errorf("iperf3 client: %w: %s", err, out)
	}
	var r struct {
		End struct {
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, 0, fmt.Errorf("iperf3 JSON: %w", err)
	}
	if r.Error != "" {
		return 0, 0, fmt.Errorf("iperf3: %s", r.Error)
	}
	return r.End.SumReceived.BitsPerSecond / 1e9, r.End.SumSent.Retransmits, nil
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
	fmt.Fprintf(w, "%-8s %12s %12s %16s %16s\n", "", "64B UDP pps", "TCP Gbit/s", "proc CPU ns/pkt", "host CPU ns/pkt")
	for _, m := range []string{"ringway", "kernel"} {
		s := r.Median[m]
		fmt.Fprintf(w, "%-8s %12.0f %12.2f %16.0f %16.0f\n", m, s.PPS, s.TCPGbps, s.ProcCPUNsPerPk, s.HostCPUNsPerPk)
	}
	fmt.Fprintf(w, "%-8s %12.2f %12.2f %16.2f %16.2f   (targets: pps ≥ %.1f, TCP ≥ %.1f)\n\n", "ratio", r.PPSRatio, r.TCPRatio, r.ProcCPURatio, r.CPURatio, r.PPSTarget, r.TCPTarget)
}
