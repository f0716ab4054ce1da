package router

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// vethLab is the router's link on rx0 of a veth pair in a scratch network
// namespace (MTU 9000, no IPv6), and a raw socket on its peer tx0.
type vethLab struct {
	l      *link
	peer   int // AF_PACKET socket on tx0, ETH_P_ALL, or -1
	peerHW net.HardwareAddr
}

// newVethLab opens the link with cfg and, when rcv is set, the peer's
// socket that receives what the link sends.
func newVethLab(t testing.TB, cfg Config, rcv bool) *vethLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and a veth pair")
	}
	name := fmt.Sprintf("rwtx%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	for _, c := range [][]string{
		{"netns", "exec", name, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"},
		{"-n", name, "link", "add", "rx0", "mtu", "9000", "type", "veth", "peer", "name", "tx0", "mtu", "9000"},
		{"-n", name, "link", "set", "rx0", "up"}, {"-n", name, "link", "set", "tx0", "up"},
	} {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", c, err, out)
		}
	}
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	v := &vethLab{peer: -1}
	err = inNetns(ns, func() error {
		var err error
		if v.l, err = openLink("rx0", &cfg, []netip.Addr{netip.MustParseAddr("192.0.2.1")}); err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("tx0")
		if err != nil {
			return err
		}
		v.peerHW = ifi.HardwareAddr
		if !rcv {
			return nil
		}
		proto := int(htons(unix.ETH_P_ALL))
		if v.peer, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(v.peer, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			return err
		}
		return unix.Bind(v.peer, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Protocol: htons(unix.ETH_P_ALL)})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		v.l.Close()
		if v.peer >= 0 {
			unix.Close(v.peer)
		}
	})
	return v
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// frame is a virtio-net header (zero) and an IPv4 frame of size bytes to
// the peer, with i in its last byte.
func (v *vethLab) frame(size int, i byte) []byte {
	b := make([]byte, vnetHdrLen+size)
	f := b[vnetHdrLen:]
	copy(f, v.peerHW)
	copy(f[6:], v.l.mac)
	f[12], f[13] = 0x08, 0x00
	f[ethHdrLen] = 0x45
	f[size-1] = i
	return b
}

// recv reads n frames at the peer and returns their sizes and last bytes.
func (v *vethLab) recv(t *testing.T, n int) (sizes []int, last []int) {
	t.Helper()
	buf := make([]byte, 70000)
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	unix.SetsockoptTimeval(v.peer, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	for len(sizes) < n {
		m, err := unix.Read(v.peer, buf)
		if err != nil {
			t.Fatalf("peer received %d of %d frames: %v", len(sizes), n, err)
		}
		if m < ethHdrLen || MAC(buf[6:12]) != MAC(v.l.mac) || ethType(buf) != ethTypeIPv4 {
			continue // not ours (the kernel's IPv6 chatter)
		}
		sizes, last = append(sizes, m), append(last, int(buf[m-1]))
	}
	return sizes, last
}

// TestTxRingSendsInOrder sends a batch that mixes frames for the transmit
// ring and frames too large for a slot (sendmmsg) and checks the peer gets
// them all, whole and in order; then with the ring's next slot still in
// flight (the rest goes with sendmmsg); then with a frame the kernel
// refuses in the middle (Write stops there, as with sendmmsg, and the ring
// keeps working); and that a Write through the ring allocates nothing.
func TestTxRingSendsInOrder(t *testing.T) {
	cfg := TestConfig()
	cfg.TxRing = ringBlockSize
	v := newVethLab(t, cfg, true)
	r := v.l.txRing
	if r == nil {
		t.Fatal("no transmit ring with TxRing set")
	}
	if r.frames != ringBlockSize/txRingFrameSize {
		t.Fatalf("%d slots, want %d", r.frames, ringBlockSize/txRingFrameSize)
	}
	check := func(what string, sizes []int) {
		t.Helper()
		var bufs [][]byte
		for i, s := range sizes {
			bufs = append(bufs, v.frame(s, byte(i)))
		}
		n, err := v.l.Write(bufs, 0)
		if n != len(bufs) || err != nil {
			t.Fatalf("%s: Write sent %d of %d: %v", what, n, len(bufs), err)
		}
		got, last := v.recv(t, len(sizes))
		for i := range sizes {
			if got[i] != sizes[i] || last[i] != i {
				t.Errorf("%s: frame %d at the peer: %d bytes, last byte %d; want %d bytes, %d", what, i, got[i], last[i], sizes[i], i)
			}
		}
	}
	big := txRingFrameMax + 1
	sizes := []int{60, 1514, big, 60, 4000, 8000, 100, txRingFrameMax, 60}
	check("mixed", sizes)
	// Around the ring's end: 40 slots from 5 before the last.
	for r.next != r.frames-5 {
		check("advance", []int{60})
	}
	var many []int
	for i := range 40 {
		many = append(many, 60+i)
	}
	check("wrapping", many)

	// The next slot still in flight: the batch goes with sendmmsg, and
	// the ring is used again once the slot is back.
	at := r.next
	h := r.hdr(at)
	atomic.StoreUint32(&h.Status, unix.TP_STATUS_SENDING)
	check("ring full", []int{60, 61, big, 62})
	if r.next != at {
		t.Errorf("the ring moved on (slot %d → %d) while its next slot was in flight", at, r.next)
	}
	atomic.StoreUint32(&h.Status, unix.TP_STATUS_AVAILABLE)
	check("ring free again", []int{60, 61})
	if r.next != (at+2)%r.frames {
		t.Errorf("next slot %d after two frames, want %d", r.next, (at+2)%r.frames)
	}

	// A frame the kernel refuses (a partial checksum beyond its end).
	bufs := [][]byte{v.frame(60, 0), v.frame(60, 1), v.frame(60, 2)}
	bufs[1][vnetOffFlags] = vnetFlagNeedsCsum
	binary.LittleEndian.PutUint16(bufs[1][vnetOffCsumStart:], 200)
	n, err := v.l.Write(bufs, 0)
	if n != 1 || err == nil {
		t.Fatalf("Write with a refused second frame: %d sent, %v; want 1 and an error", n, err)
	}
	if got, _ := v.recv(t, 1); got[0] != 60 {
		t.Fatalf("peer got %d bytes", got[0])
	}
	check("after a refused frame", []int{60, 70, big, 80})

	// No allocation per Write (the ring; sendmmsg's vectors are pooled).
	one := [][]byte{v.frame(60, 0), v.frame(60, 1)}
	buf := make([]byte, 2048)
	allocs := testing.AllocsPerRun(50, func() {
		if n, err := v.l.Write(one, 0); n != 2 || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
		for range 2 {
			unix.Read(v.peer, buf)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per Write, want 0", allocs)
	}
}

// BenchmarkLinkWrite sends batches of 32 64-byte frames over a veth pair
// (the peer drops them: not its MAC) through the transmit ring and with
// sendmmsg, and reports the sending thread's CPU time per frame
// (RUSAGE_THREAD: user and system, the peer's receive softirq included,
// the same in both), which depends far less on the machine's load than
// ns/op.
func BenchmarkLinkWrite(b *testing.B) {
	for _, ring := range []bool{true, false} {
		name := "sendmmsg"
		if ring {
			name = "ring"
		}
		b.Run(name, func(b *testing.B) {
			cfg := TestConfig()
			cfg.TxRing = 0
			if ring {
				cfg.TxRing = 1 << 20
			}
			v := newVethLab(b, cfg, false)
			bufs := make([][]byte, 32)
			for i := range bufs {
				bufs[i] = v.frame(64, byte(i))
				bufs[i][vnetHdrLen] ^= 2 // a locally administered MAC that is not the peer's
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var r0, r1 unix.Rusage
			unix.Getrusage(unix.RUSAGE_THREAD, &r0)
			b.ResetTimer()
			for b.Loop() {
				if n, err := v.l.Write(bufs, 0); n != len(bufs) || err != nil {
					b.Fatalf("Write: %d, %v", n, err)
				}
			}
			b.StopTimer()
			unix.Getrusage(unix.RUSAGE_THREAD, &r1)
			cpu := (r1.Utime.Nano() - r0.Utime.Nano()) + (r1.Stime.Nano() - r0.Stime.Nano())
			b.ReportMetric(float64(cpu)/float64(b.N*len(bufs)), "cpu-ns/frame")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(bufs)), "ns/frame")
		})
	}
}
