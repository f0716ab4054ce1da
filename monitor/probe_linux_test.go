package monitor

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ringway/ringway/router"
	"github.com/ringway/ringway/router/routertest"
)

// records keeps the level and message of every log record.
type records struct {
	mu  sync.Mutex
	got []string
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, rec.Level.String()+" "+rec.Message)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }
func (r *records) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.got
	r.got = nil
	return g
}

// wedgeFilter passes everything; while armed, Pass blocks until release
// is closed: a deadlocked filter wedges the worker inside its batch.
type wedgeFilter struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (f *wedgeFilter) Pass([]byte, int, int, int64) bool {
	if f.armed.Load() {
		f.entered <- struct{}{}
		<-f.release
	}
	return true
}
func (f *wedgeFilter) PassLocal([]byte, int, int64) bool  { return true }
func (f *wedgeFilter) Check([]byte, int, int, int64) bool { return false }

// udpFrame is a UDP frame from 203.0.113.10 to 198.51.100.10 through the
// router (Ethernet destination mac), behind a zero virtio-net header.
func udpFrame(mac net.HardwareAddr) []byte {
	f := make([]byte, 14+28)
	copy(f, mac)
	copy(f[6:], []byte{0x02, 0, 0, 0, 0x10, 0x10})
	f[12], f[13] = 0x08, 0x00
	ip := f[14:]
	ip[0], ip[3], ip[8], ip[9] = 0x45, 28, 64, 17
	copy(ip[12:], []byte{203, 0, 113, 10, 198, 51, 100, 10})
	var s uint32
	for i := 0; i < 20; i += 2 {
		s += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	ip[10], ip[11] = byte(^s>>8), byte(^s)
	return routertest.VnetFrame(f)
}

// The built-in application check over the real router's workers (fake
// devices, virtual time): healthy while the workers answer; a worker
// wedged inside a batch makes it unhealthy within two intervals (the next
// round plus its deadline), saying which worker and why, with a warning;
// once the worker returns, healthy again within two intervals, with an
// info record.
func TestProbeMonitorWedgedWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		extMAC := net.HardwareAddr{0x02, 0, 0, 0, 0x01, 0x01}
		ext := routertest.NewFakeLink(extMAC, 1500)
		in := routertest.NewFakeLink(net.HardwareAddr{0x02, 0, 0, 0, 0x01, 0x02}, 1500)
		wf := &wedgeFilter{entered: make(chan struct{}), release: make(chan struct{})}
		cfg := router.TestConfig()
		cfg.Links = []router.Link{
			{Name: "ext0", Primary: netip.MustParsePrefix("203.0.113.1/24")},
			{Name: "int0", Primary: netip.MustParsePrefix("198.51.100.1/24")},
		}
		cfg.ManageKernel = false
		cfg.Devices = &router.Devices{Links: []router.LinkDevice{ext, in}, TUN: routertest.NewFakeTUN()}
		cfg.Filter = wf
		cfg.Logger = slog.New(slog.DiscardHandler)
		r, err := router.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go r.Run(ctx)
		logs := &records{}
		m := NewProbe(r, time.Second, slog.New(logs))
		go m.Run(ctx)

		time.Sleep(3 * time.Second)
		synctest.Wait()
		select {
		case <-m.Changed():
			t.Fatalf("verdict changed while every worker answers: healthy %v, failure %q", m.Healthy(), m.Failure())
		default:
		}
		if !m.Healthy() {
			t.Fatalf("unhealthy with every worker answering: %q", m.Failure())
		}

		wf.armed.Store(true)
		ext.In <- udpFrame(extMAC)
		<-wf.entered
		at := time.Now()
		<-m.Changed()
		if d := time.Since(at); d > 2*time.Second {
			t.Errorf("unhealthy %v after the wedge, want within two intervals", d)
		}
		if f := m.Failure(); m.Healthy() || !strings.HasPrefix(f, "ext0 queue 0: no answer: inside one batch for ") || strings.Contains(f, "int0") {
			t.Errorf("healthy %v, failure %q; want unhealthy, ext0's worker wedged", m.Healthy(), f)
		}
		if got := logs.take(); len(got) != 1 || !strings.HasPrefix(got[0], "WARN application monitor: the data plane check failed") {
			t.Errorf("logs %q, want one warning", got)
		}

		wf.armed.Store(false)
		close(wf.release)
		at = time.Now()
		<-m.Changed()
		if d := time.Since(at); d > 2*time.Second {
			t.Errorf("healthy %v after the worker returned, want within two intervals", d)
		}
		if !m.Healthy() || m.Failure() != "" {
			t.Errorf("healthy %v, failure %q; want healthy", m.Healthy(), m.Failure())
		}
		if got := logs.take(); len(got) != 1 || got[0] != "INFO application monitor: the data plane check passes again" {
			t.Errorf("logs %q, want one info record", got)
		}
		cancel()
	})
}

type fakeProber struct {
	res []router.ProbeResult
	err error
}

func (f *fakeProber) Probe(context.Context) ([]router.ProbeResult, error) { return f.res, f.err }

// One round's verdict: a router that does not run yet says nothing; an
// error or any failing worker is a failure naming the workers; all
// answered (or idle) passes.
func TestProbeOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		p       fakeProber
		failure string
		decided bool
	}{
		{"not running", fakeProber{err: router.ErrNotRunning}, "", false},
		{"other error", fakeProber{err: errors.New("boom")}, "boom", true},
		{"all pass", fakeProber{res: []router.ProbeResult{{Worker: "ext0 queue 0", Answered: true}, {Worker: "tun"}}}, "", true},
		{"two fail", fakeProber{res: []router.ProbeResult{
			{Worker: "ext0 queue 0", Failure: "no answer: waiting for frames and not woken"},
			{Worker: "int0 queue 0", Answered: true},
			{Worker: "tun", Answered: true, Failure: "local probe not routed (no_route)"},
		}}, "ext0 queue 0: no answer: waiting for frames and not woken; tun: local probe not routed (no_route)", true},
	} {
		m := NewProbe(&tc.p, time.Second, slog.New(slog.DiscardHandler))
		failure, decided := m.once(context.Background())
		if failure != tc.failure || decided != tc.decided {
			t.Errorf("%s: once = %q, %v; want %q, %v", tc.name, failure, decided, tc.failure, tc.decided)
		}
	}
}
