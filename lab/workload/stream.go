package workload

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// StreamConfig configures the fail-over stream.
type StreamConfig struct {
	Server       netip.AddrPort // the echo server (required), e.g. 198.51.100.10:7
	Interval     time.Duration  // time between datagrams; default 1 ms (1 kHz)
	Size         int            // UDP payload bytes, at least 24; default 64
	Drain        time.Duration  // how long Stop waits for replies in flight; default 200 ms
	GapThreshold time.Duration  // gaps at least this long are listed in Gaps; default 20 ms
}

// DefaultStreamConfig is the 1 kHz stream of DESIGN.md "How we measure".
func DefaultStreamConfig(server netip.AddrPort) StreamConfig {
	return StreamConfig{
		Server:       server,
		Interval:     time.Millisecond,       // 1 kHz
		Size:         64,                     // bytes of UDP payload
		Drain:        200 * time.Millisecond, // wait for late replies
		GapThreshold: 20 * time.Millisecond,  // 20 missed replies
	}
}

func (c *StreamConfig) setDefaults() error {
	d := DefaultStreamConfig(c.Server)
	if c.Interval == 0 {
		c.Interval = d.Interval
	}
	if c.Size == 0 {
		c.Size = d.Size
	}
	if c.Drain == 0 {
		c.Drain = d.Drain
	}
	if c.GapThreshold == 0 {
		c.GapThreshold = d.GapThreshold
	}
	switch {
	case !c.Server.IsValid() || !c.Server.Addr().Is4():
		return fmt.Errorf("stream: server %v: need an IPv4 address and port", c.Server)
	case c.Interval < 0:
		return fmt.Errorf("stream: interval %v must be positive", c.Interval)
	case c.Size < probeLen || c.Size > 1472:
		return fmt.Errorf("stream: size %d must be %d..1472 bytes", c.Size, probeLen)
	case c.Drain < 0 || c.GapThreshold < 0:
		return errors.New("stream: drain and gap threshold must not be negative")
	}
	return nil
}

// StreamReport is what a stream saw. Replies are timestamped by the kernel
// on arrival (SO_TIMESTAMPNS), so the client's own scheduling delays do not
// show up as gaps.
type StreamReport struct {
	Start, End time.Time // first and last send
	Sent       uint64    // datagrams sent
	Received   uint64    // distinct replies received
	Lost       uint64    // Sent - Received (in flight counts as lost until Stop)
	Duplicates uint64    // replies received more than once
	SendErrors uint64    // sends the kernel refused (e.g. no route, ARP failed)

	// LongestGap is the longest time without a reply: between two
	// consecutive replies, from Start to the first reply, or from the last
	// reply to End (a stream that ends in an outage reports it).
	LongestGap time.Duration
	Longest    Gap
	Gaps       []Gap // every gap ≥ GapThreshold, in order

	// LongestSendGap is the longest pause of the sender itself: a gap in
	// replies shorter than this may be the client's fault, not the network's.
	LongestSendGap time.Duration
	MaxRTT         time.Duration
}

// Stream is a running 1 kHz UDP echo stream.
type Stream struct {
	cfg   StreamConfig
	conn  *net.UDPConn
	id    uint32
	start time.Time

	stop     chan struct{}
	stopOnce sync.Once
	sendDone chan struct{}
	recvDone chan struct{}

	mu       sync.Mutex
	sent     uint64
	lastSend time.Time
	sendGap  time.Duration
	sendErrs uint64
	seen     []uint64 // bitset of received sequence numbers
	received uint64
	dups     uint64
	maxRTT   time.Duration
	gaps     *gapTracker
	final    *StreamReport
}

// StartStream opens a UDP socket in namespace ns and starts sending one
// datagram every Interval to cfg.Server, measuring the echoes. It stops on
// Stop or when ctx is done; call Stop in either case to get the report and
// release the socket.
func StartStream(ctx context.Context, r Netns, ns string, cfg StreamConfig) (*Stream, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	var conn *net.UDPConn
	err := in(r, ns, func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("stream socket in %s: %w", ns, err)
	}
	conn.SetReadBuffer(1 << 20)
	if rc, err := conn.SyscallConn(); err == nil {
		var serr error
		rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		})
		if serr != nil {
			conn.Close()
			return nil, fmt.Errorf("stream socket: SO_TIMESTAMPNS: %w", serr)
		}
	}
	var idb [4]byte
	rand.Read(idb[:])
	s := &Stream{
		cfg:      cfg,
		conn:     conn,
		id:       binary.BigEndian.Uint32(idb[:]),
		start:    time.Now(),
		stop:     make(chan struct{}),
		sendDone: make(chan struct{}),
		recvDone: make(chan struct{}),
	}
	s.gaps = newGapTracker(s.start, cfg.GapThreshold)
	go s.send(ctx)
	go s.receive()
	return s, nil
}

func (s *Stream) send(ctx context.Context) {
	defer close(s.sendDone)
	buf := make([]byte, s.cfg.Size)
	dst := s.cfg.Server
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for seq := uint64(0); ; seq++ {
		now := time.Now()
		probe{Stream: s.id, Seq: seq, SentNs: int64(now.Sub(s.start))}.put(buf)
		// Count before sending: on a fast path the echo can arrive before
		// WriteTo returns, and the receiver only accepts seq < sent.
		s.mu.Lock()
		s.sent++
		s.mu.Unlock()
		_, err := s.conn.WriteToUDPAddrPort(buf, dst)
		s.mu.Lock()
		if err != nil {
			s.sendErrs++
		}
		if !s.lastSend.IsZero() {
			if d := now.Sub(s.lastSend); d > s.sendGap {
				s.sendGap = d
			}
		}
		s.lastSend = now
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

func (s *Stream) receive() {
	defer close(s.recvDone)
	buf := make([]byte, 2048)
	oob := make([]byte, 128)
	for {
		n, oobn, _, _, err := s.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		at := kernelTime(oob[:oobn])
		if at.IsZero() {
			at = time.Now()
		}
		var p probe
		if p.UnmarshalBinary(buf[:n]) != nil || p.Stream != s.id {
			continue
		}
		s.mu.Lock()
		if p.Seq >= s.sent {
			s.mu.Unlock()
			continue // not a sequence number we sent: not an echo of ours
		}
		w, bit := p.Seq/64, uint64(1)<<(p.Seq%64)
		for uint64(len(s.seen)) <= w {
			s.seen = append(s.seen, 0)
		}
		if s.seen[w]&bit != 0 {
			s.dups++
			s.mu.Unlock()
			continue
		}
		s.seen[w] |= bit
		s.received++
		if rtt := at.Sub(s.start.Add(time.Duration(p.SentNs))); rtt > s.maxRTT {
			s.maxRTT = rtt
		}
		s.gaps.observe(at)
		s.mu.Unlock()
	}
}

// kernelTime extracts the SO_TIMESTAMPNS receive time, or zero.
func kernelTime(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_TIMESTAMPNS {
			continue
		}
		switch len(m.Data) {
		case 16:
			return time.Unix(int64(binary.NativeEndian.Uint64(m.Data)), int64(binary.NativeEndian.Uint64(m.Data[8:])))
		case 8:
			return time.Unix(int64(int32(binary.NativeEndian.Uint32(m.Data))), int64(int32(binary.NativeEndian.Uint32(m.Data[4:]))))
		}
	}
	return time.Time{}
}

// Snapshot returns the report so far; replies in flight count as lost.
func (s *Stream) Snapshot() StreamReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.final != nil {
		return *s.final
	}
	return s.reportLocked(time.Now())
}

func (s *Stream) reportLocked(end time.Time) StreamReport {
	longest, gaps := s.gaps.finish(end)
	r := StreamReport{
		Start:          s.start,
		End:            end,
		Sent:           s.sent,
		Received:       s.received,
		Duplicates:     s.dups,
		SendErrors:     s.sendErrs,
		LongestGap:     longest.Len,
		Longest:        longest,
		Gaps:           gaps,
		LongestSendGap: s.sendGap,
		MaxRTT:         s.maxRTT,
	}
	if s.sent > s.received {
		r.Lost = s.sent - s.received
	}
	return r
}

// LastReply returns the arrival time of the latest reply (zero: none yet).
func (s *Stream) LastReply() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gaps.last
}

// WaitFlowing returns when replies have been arriving without a gap of
// GapThreshold or more for at least d (the stream is healthy), or with an
// error when ctx ends first.
func (s *Stream) WaitFlowing(ctx context.Context, d time.Duration) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		now := time.Now()
		s.mu.Lock()
		last, since := s.gaps.last, s.gaps.flowingSince
		s.mu.Unlock()
		if !last.IsZero() && now.Sub(last) < s.cfg.GapThreshold && now.Sub(since) >= d {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream to %s not flowing for %v (last reply %v ago): %w", s.cfg.Server, d, lastAgo(last, now), ctx.Err())
		case <-t.C:
		}
	}
}

func lastAgo(last, now time.Time) string {
	if last.IsZero() {
		return "never"
	}
	return now.Sub(last).Round(time.Millisecond).String()
}

// Stop stops sending, waits Drain for replies in flight, closes the socket
// and returns the final report. It is idempotent.
func (s *Stream) Stop() StreamReport {
	s.stopOnce.Do(func() {
		close(s.stop)
		<-s.sendDone
		time.Sleep(s.cfg.Drain)
		s.conn.Close()
		<-s.recvDone
		s.mu.Lock()
		end := s.lastSend
		if end.IsZero() {
			end = s.start
		}
		r := s.reportLocked(end)
		s.final = &r
		s.mu.Unlock()
	})
	return s.Snapshot()
}
