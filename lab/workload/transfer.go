package workload

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// TransferPort is the TCP port of the lab's transfer server by convention.
const TransferPort = 9009

// The transfer protocol, client to server:
//
//	header  "RWT1" | 8-byte big-endian length N
//	data    N bytes
//	trailer the client's SHA-256 of the data (32 bytes)
//
// and server to client: one status byte (0 the digests match, 1 they do not)
// followed by the server's SHA-256 of what it received. Both ends check.
const (
	transferMagic  = 0x52575431 // "RWT1"
	transferHdrLen = 12
	maxTransfer    = 1 << 40
)

type transferHeader struct{ Len int64 }

// MarshalBinary encodes the header.
func (h transferHeader) MarshalBinary() ([]byte, error) {
	b := make([]byte, transferHdrLen)
	binary.BigEndian.PutUint32(b, transferMagic)
	binary.BigEndian.PutUint64(b[4:], uint64(h.Len))
	return b, nil
}

// UnmarshalBinary decodes the header and checks the length is sane.
func (h *transferHeader) UnmarshalBinary(b []byte) error {
	if len(b) < transferHdrLen {
		return fmt.Errorf("transfer header: %d bytes: %w", len(b), io.ErrUnexpectedEOF)
	}
	if binary.BigEndian.Uint32(b) != transferMagic {
		return errors.New("transfer header: bad magic (not a ringway lab transfer client)")
	}
	n := binary.BigEndian.Uint64(b[4:])
	if n > maxTransfer {
		return fmt.Errorf("transfer header: length %d exceeds %d", n, int64(maxTransfer))
	}
	h.Len = int64(n)
	return nil
}

// TransferResult is one transfer as the server saw it.
type TransferResult struct {
	From  netip.AddrPort
	Bytes int64
	Err   error // nil: all bytes arrived and the digests matched
}

// TransferServer accepts transfers and checks each one's SHA-256.
type TransferServer struct {
	ln      *net.TCPListener
	wg      sync.WaitGroup
	mu      sync.Mutex
	results []TransferResult
}

// ListenTransfer listens on TCP addr inside namespace ns and serves transfers
// until Close.
func ListenTransfer(r Netns, ns string, addr netip.AddrPort) (*TransferServer, error) {
	var ln *net.TCPListener
	err := in(r, ns, func() error {
		var err error
		ln, err = net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("transfer server on %s in %s: %w", addr, ns, err)
	}
	s := &TransferServer{ln: ln}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Addr returns the listening address.
func (s *TransferServer) Addr() netip.AddrPort { return s.ln.Addr().(*net.TCPAddr).AddrPort() }

// Results returns the transfers completed or failed so far.
func (s *TransferServer) Results() []TransferResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]TransferResult(nil), s.results...)
}

// Close stops accepting, closes nothing in flight abruptly beyond the
// listener, and waits for running transfers to end.
func (s *TransferServer) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *TransferServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			n, err := receiveTransfer(c)
			c.Close()
			s.mu.Lock()
			s.results = append(s.results, TransferResult{From: c.RemoteAddr().(*net.TCPAddr).AddrPort(), Bytes: n, Err: err})
			s.mu.Unlock()
		}()
	}
}

func receiveTransfer(c net.Conn) (int64, error) {
	br := bufio.NewReaderSize(c, 64<<10)
	hb := make([]byte, transferHdrLen)
	if _, err := io.ReadFull(br, hb); err != nil {
		return 0, fmt.Errorf("transfer header: %w", err)
	}
	var h transferHeader
	if err := h.UnmarshalBinary(hb); err != nil {
		return 0, err
	}
	sum := sha256.New()
	n, err := io.CopyN(sum, br, h.Len)
	if err != nil {
		return n, fmt.Errorf("transfer data: %d of %d bytes: %w", n, h.Len, err)
	}
	var theirs [32]byte
	if _, err := io.ReadFull(br, theirs[:]); err != nil {
		return n, fmt.Errorf("transfer trailer: %w", err)
	}
	var ours [32]byte
	sum.Sum(ours[:0])
	status := byte(0)
	if ours != theirs {
		status = 1
	}
	if _, err := c.Write(append([]byte{status}, ours[:]...)); err != nil {
		return n, fmt.Errorf("transfer answer: %w", err)
	}
	if status != 0 {
		return n, fmt.Errorf("transfer of %d bytes: SHA-256 mismatch (client %x, server %x)", n, theirs[:8], ours[:8])
	}
	return n, nil
}

// TransferConfig configures a client transfer.
type TransferConfig struct {
	Server netip.AddrPort // the transfer server (required)
	Bytes  int64          // bytes to send (required, > 0)
	Rate   int64          // bytes per second; 0 means as fast as TCP goes
	Seed   uint64         // seeds the pseudo-random data
}

// TransferReport is a finished transfer as the client saw it.
type TransferReport struct {
	Bytes    int64
	Duration time.Duration // connect to the server's answer
	SHA256   [32]byte      // of the data sent; the server's digest matched it
}

// Transfer is a TCP transfer in progress.
type Transfer struct {
	sent   atomic.Int64
	done   chan struct{}
	report TransferReport
	err    error
}

// StartTransfer connects from namespace ns to cfg.Server (the connect happens
// before StartTransfer returns) and sends in the background. Cancelling ctx
// aborts the transfer. Wait returns the outcome.
func StartTransfer(ctx context.Context, r Netns, ns string, cfg TransferConfig) (*Transfer, error) {
	if !cfg.Server.IsValid() || cfg.Bytes <= 0 || cfg.Bytes > maxTransfer || cfg.Rate < 0 {
		return nil, fmt.Errorf("transfer: need a server address and 0 < bytes <= %d, rate >= 0 (got %v, %d, %d)", int64(maxTransfer), cfg.Server, cfg.Bytes, cfg.Rate)
	}
	start := time.Now()
	var c net.Conn
	err := in(r, ns, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, "tcp4", cfg.Server.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("transfer: connect to %s from %s: %w", cfg.Server, ns, err)
	}
	t := &Transfer{done: make(chan struct{})}
	go func() {
		defer close(t.done)
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		defer c.Close()
		t.report, t.err = t.run(ctx, c, cfg, start)
	}()
	return t, nil
}

func (t *Transfer) run(ctx context.Context, c net.Conn, cfg TransferConfig, start time.Time) (TransferReport, error) {
	fail := func(what string, err error) (TransferReport, error) {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return TransferReport{Bytes: t.sent.Load()}, fmt.Errorf("transfer to %s: %s after %d of %d bytes: %w", cfg.Server, what, t.sent.Load(), cfg.Bytes, err)
	}
	hb, _ := transferHeader{Len: cfg.Bytes}.MarshalBinary()
	if _, err := c.Write(hb); err != nil {
		return fail("header", err)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	sum := sha256.New()
	buf := make([]byte, 32<<10)
	for t.sent.Load() < cfg.Bytes {
		n := min(int64(len(buf)), cfg.Bytes-t.sent.Load())
		chunk := buf[:n]
		for i := 0; i+8 <= len(chunk); i += 8 {
			binary.LittleEndian.PutUint64(chunk[i:], rng.Uint64())
		}
		for i := len(chunk) &^ 7; i < len(chunk); i++ {
			chunk[i] = byte(rng.Uint32())
		}
		sum.Write(chunk)
		if _, err := c.Write(chunk); err != nil {
			return fail("data", err)
		}
		sent := t.sent.Add(n)
		if cfg.Rate > 0 {
			due := start.Add(time.Duration(float64(sent) / float64(cfg.Rate) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					return fail("data", ctx.Err())
				case <-time.After(d):
				}
			}
		}
	}
	var ours [32]byte
	sum.Sum(ours[:0])
	if _, err := c.Write(ours[:]); err != nil {
		return fail("trailer", err)
	}
	ans := make([]byte, 33)
	if _, err := io.ReadFull(c, ans); err != nil {
		return fail("answer", err)
	}
	rep := TransferReport{Bytes: cfg.Bytes, Duration: time.Since(start), SHA256: ours}
	if ans[0] != 0 || [32]byte(ans[1:]) != ours {
		return rep, fmt.Errorf("transfer to %s: server reports SHA-256 %x, client sent %x", cfg.Server, ans[1:9], ours[:8])
	}
	return rep, nil
}

// Sent returns the bytes written to the socket so far.
func (t *Transfer) Sent() int64 { return t.sent.Load() }

// Done is closed when the transfer has ended.
func (t *Transfer) Done() <-chan struct{} { return t.done }

// Wait waits for the transfer to end and returns its outcome.
func (t *Transfer) Wait() (TransferReport, error) {
	<-t.done
	return t.report, t.err
}
