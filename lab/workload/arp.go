package workload

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// ARP operations (RFC 826).
const (
	ARPRequest = 1
	ARPReply   = 2
)

const (
	etherTypeARP = 0x0806
	arpFrameLen  = 14 + 28 // Ethernet header + ARP for IPv4 over Ethernet
)

// arpFrame is an Ethernet frame carrying ARP for IPv4 (RFC 826).
type arpFrame struct {
	EthDst, EthSrc [6]byte
	Op             uint16
	SenderMAC      [6]byte
	SenderIP       netip.Addr
	TargetMAC      [6]byte
	TargetIP       netip.Addr
}

// MarshalBinary encodes the frame (42 bytes, unpadded).
func (f arpFrame) MarshalBinary() ([]byte, error) {
	if !f.SenderIP.Is4() || !f.TargetIP.Is4() {
		return nil, errors.New("arp frame: sender and target must be IPv4")
	}
	b := make([]byte, arpFrameLen)
	copy(b[0:], f.EthDst[:])
	copy(b[6:], f.EthSrc[:])
	binary.BigEndian.PutUint16(b[12:], etherTypeARP)
	a := b[14:]
	binary.BigEndian.PutUint16(a[0:], 1)      // hardware: Ethernet
	binary.BigEndian.PutUint16(a[2:], 0x0800) // protocol: IPv4
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], f.Op)
	copy(a[8:], f.SenderMAC[:])
	s4, t4 := f.SenderIP.As4(), f.TargetIP.As4()
	copy(a[14:], s4[:])
	copy(a[18:], f.TargetMAC[:])
	copy(a[24:], t4[:])
	return b, nil
}

var errNotARPv4 = errors.New("not ARP for IPv4 over Ethernet")

// UnmarshalBinary decodes an Ethernet frame; anything but ARP for IPv4 over
// Ethernet is errNotARPv4. Trailing padding is ignored.
func (f *arpFrame) UnmarshalBinary(b []byte) error {
	if len(b) < 14 {
		return fmt.Errorf("arp frame: %d bytes: %w", len(b), io.ErrUnexpectedEOF)
	}
	if binary.BigEndian.Uint16(b[12:]) != etherTypeARP {
		return errNotARPv4
	}
	if len(b) < arpFrameLen {
		return fmt.Errorf("arp frame: %d bytes: %w", len(b), io.ErrUnexpectedEOF)
	}
	a := b[14:]
	if binary.BigEndian.Uint16(a[0:]) != 1 || binary.BigEndian.Uint16(a[2:]) != 0x0800 || a[4] != 6 || a[5] != 4 {
		return errNotARPv4
	}
	copy(f.EthDst[:], b[0:6])
	copy(f.EthSrc[:], b[6:12])
	f.Op = binary.BigEndian.Uint16(a[6:])
	copy(f.SenderMAC[:], a[8:14])
	f.SenderIP = netip.AddrFrom4([4]byte(a[14:18]))
	copy(f.TargetMAC[:], a[18:24])
	f.TargetIP = netip.AddrFrom4([4]byte(a[24:28]))
	return nil
}

// ARPEvent is one ARP packet seen on the wire, reduced to its claim: the
// sender says IP is at MAC. Replies, gratuitous ARP and ordinary requests
// all update a receiver's cache, so all are recorded.
type ARPEvent struct {
	Time       time.Time
	Op         uint16 // ARPRequest or ARPReply
	IP         netip.Addr
	MAC        net.HardwareAddr
	Gratuitous bool // sender IP == target IP
}

// ARPConfig configures an ARP observer.
type ARPConfig struct {
	Interface string // default HostIf-style "eth0"
	// Probe lists addresses to ask for every ProbeInterval with ARP requests
	// from the interface's own MAC and first IPv4 address, so that each
	// owner keeps answering while the observer runs.
	Probe         []netip.Addr
	ProbeInterval time.Duration // default 100 ms
}

// ARPObserver records the ARP claims seen on one interface.
type ARPObserver struct {
	conn *packet.Conn
	self [6]byte
	wg   sync.WaitGroup
	stop chan struct{}
	once sync.Once

	mu     sync.Mutex
	events []ARPEvent
}

// StartARP opens an AF_PACKET socket (ETH_P_ARP, own transmissions ignored)
// on cfg.Interface in namespace ns and records every ARP packet it sees;
// with cfg.Probe it also sends requests. It runs until Close or ctx ends.
func StartARP(ctx context.Context, r Netns, ns string, cfg ARPConfig) (*ARPObserver, error) {
	if cfg.Interface == "" {
		cfg.Interface = "eth0"
	}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = 100 * time.Millisecond
	}
	var (
		conn *packet.Conn
		ifi  *net.Interface
		src  netip.Addr
	)
	err := in(r, ns, func() error {
		var err error
		if ifi, err = net.InterfaceByName(cfg.Interface); err != nil {
			return err
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP.To4()); ok {
					src = ip
					break
				}
			}
		}
		conn, err = packet.Listen(ifi, packet.Raw, etherTypeARP, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("arp observer on %s in %s: %w", cfg.Interface, ns, err)
	}
	if len(cfg.Probe) > 0 && !src.IsValid() {
		conn.Close()
		return nil, fmt.Errorf("arp observer: %s in %s has no IPv4 address to probe from", cfg.Interface, ns)
	}
	if rc, err := conn.SyscallConn(); err == nil {
		// Our own probes are not claims of anybody else.
		rc.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
		})
	}
	o := &ARPObserver{conn: conn, stop: make(chan struct{})}
	copy(o.self[:], ifi.HardwareAddr)
	o.wg.Add(1)
	go o.read()
	if len(cfg.Probe) > 0 {
		o.wg.Add(1)
		go o.probe(cfg.Probe, src, cfg.ProbeInterval)
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		select {
		case <-ctx.Done():
			o.conn.Close()
		case <-o.stop:
		}
	}()
	return o, nil
}

func (o *ARPObserver) read() {
	defer o.wg.Done()
	buf := make([]byte, 1514)
	for {
		n, _, err := o.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EBADF) {
				return
			}
			select {
			case <-o.stop:
				return
			default:
				continue
			}
		}
		at := time.Now()
		var f arpFrame
		if f.UnmarshalBinary(buf[:n]) != nil || f.SenderMAC == o.self {
			continue
		}
		if !f.SenderIP.IsValid() || f.SenderIP.IsUnspecified() {
			continue // ARP probe (RFC 5227): claims nothing
		}
		ev := ARPEvent{
			Time:       at,
			Op:         f.Op,
			IP:         f.SenderIP,
			MAC:        net.HardwareAddr(bytes.Clone(f.SenderMAC[:])),
			Gratuitous: f.SenderIP == f.TargetIP,
		}
		o.mu.Lock()
		o.events = append(o.events, ev)
		o.mu.Unlock()
	}
}

func (o *ARPObserver) probe(targets []netip.Addr, src netip.Addr, every time.Duration) {
	defer o.wg.Done()
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for _, ip := range targets {
			f := arpFrame{EthDst: [6]byte(bcast), EthSrc: o.self, Op: ARPRequest, SenderMAC: o.self, SenderIP: src, TargetIP: ip}
			b, err := f.MarshalBinary()
			if err == nil {
				o.conn.WriteTo(b, &packet.Addr{HardwareAddr: bcast})
			}
		}
		select {
		case <-o.stop:
			return
		case <-t.C:
		}
	}
}

// Events returns every claim seen so far, in arrival order.
func (o *ARPObserver) Events() []ARPEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]ARPEvent(nil), o.events...)
}

// Answerers returns the distinct MACs that claimed ip in [from, to), sorted.
// A zero from or to leaves that side open. Outside a fail-over window a VIP
// must have exactly one.
func (o *ARPObserver) Answerers(ip netip.Addr, from, to time.Time) []net.HardwareAddr {
	return Answerers(o.Events(), ip, from, to)
}

// Answerers returns the distinct MACs that claimed ip in [from, to) among
// events, sorted; a zero from or to leaves that side open.
func Answerers(events []ARPEvent, ip netip.Addr, from, to time.Time) []net.HardwareAddr {
	seen := map[string]net.HardwareAddr{}
	for _, e := range events {
		if e.IP != ip || (!from.IsZero() && e.Time.Before(from)) || (!to.IsZero() && !e.Time.Before(to)) {
			continue
		}
		seen[string(e.MAC)] = e.MAC
	}
	out := make([]net.HardwareAddr, 0, len(seen))
	for _, m := range seen {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i], out[j]) < 0 })
	return out
}

// Close stops the observer and waits for its goroutines.
func (o *ARPObserver) Close() error {
	var err error
	o.once.Do(func() {
		close(o.stop)
		err = o.conn.Close()
		o.wg.Wait()
		if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
			err = nil // already closed when ctx ended
		}
	})
	return err
}
