package router_test

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/ringway/ringway/forward"
	"github.com/ringway/ringway/router"
	"github.com/ringway/ringway/router/routertest"
)

// probe runs r.Probe with a one-second deadline.
func probe(t *testing.T, r *router.Router) []router.ProbeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res, err := r.Probe(ctx)
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	return res
}

// failures returns the failing results by worker name.
func failures(res []router.ProbeResult) map[string]router.ProbeResult {
	m := map[string]router.ProbeResult{}
	for _, p := range res {
		if p.Failure != "" {
			m[p.Worker] = p
		}
	}
	return m
}

// noGARPs fails if anything but gratuitous ARP was written to out: probes
// never reach the wire.
func noGARPs(t *testing.T, out <-chan []byte, what string) {
	t.Helper()
	for {
		select {
		case b := <-out:
			p := gopacket.NewPacket(b[router.VirtioNetHdrLen:], layers.LayerTypeEthernet, gopacket.Default)
			if !isGARP(p) {
				t.Errorf("%s: a probe reached the wire: %v", what, p)
			}
		default:
			return
		}
	}
}

// Healthy idle workers answer every probe on their own goroutines (woken
// from Read), the probes come out as they must through the real filter, and
// nothing is sent, counted as received, or tracked.
func TestProbeHealthy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, err := forward.New(forward.Config{
			Links: []forward.Link{
				{Prefix: netip.PrefixFrom(extIP, 24).Masked(), Primary: extIP},
				{Prefix: netip.PrefixFrom(intIP, 24).Masked(), Primary: intIP},
			},
			VIPs:    []netip.Addr{vip},
			Default: forward.Accept, // even accept-all drops the spoofed probe
		})
		if err != nil {
			t.Fatal(err)
		}
		n := startFakeNode(t, func(c *router.Config) { c.Filter = f })
		synctest.Wait() // every worker blocked in Read
		for round := range 3 {
			res := probe(t, n.r)
			var names []string
			for _, p := range res {
				names = append(names, p.Worker)
				if !p.Answered || p.Failure != "" {
					t.Errorf("round %d: %+v, want answered without failure", round, p)
				}
			}
			if got := strings.Join(names, ", "); got != "ext0 queue 0, int0 queue 0, tun" {
				t.Errorf("round %d: workers %s, want ext0 queue 0, int0 queue 0, tun", round, got)
			}
		}
		st := n.r.Stats()
		for _, l := range st.Links {
			if l.RxFrames != 0 || l.Forwarded != 0 || len(l.Drops) != 0 {
				t.Errorf("%s: probes counted as traffic: %+v", l.Name, l)
			}
		}
		if fs := f.Stats(); fs.Passed != 0 || fs.Flows != 0 || fs.Drops != ([len(fs.Drops)]uint64{}) {
			t.Errorf("probes counted by the filter: %+v", fs)
		}
		noGARPs(t, n.ext.Out, "ext0")
		noGARPs(t, n.int.Out, "int0")
		select {
		case p := <-n.tun.Out:
			t.Errorf("a probe reached TUN: %x", p)
		default:
		}
	})
}

// wedgeFilter passes everything; while armed, Pass blocks until release is
// closed (a deadlocked filter). Check drops everything, unless broken.
type wedgeFilter struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
	broken  atomic.Bool // Check passes everything: the spoofed probe too
}

func (f *wedgeFilter) Pass([]byte, int, int, int64) bool {
	if f.armed.Load() {
		f.entered <- struct{}{}
		<-f.release
	}
	return true
}
func (f *wedgeFilter) PassLocal([]byte, int, int64) bool  { return true }
func (f *wedgeFilter) Check([]byte, int, int, int64) bool { return f.broken.Load() }

// A worker wedged inside a batch (its filter call never returns) fails the
// probe at the deadline, with how long it has been inside; the others
// still answer; once it returns, it answers again.
func TestProbeWedgedWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wf := &wedgeFilter{entered: make(chan struct{}), release: make(chan struct{})}
		n := startFakeNode(t, func(c *router.Config) { c.Filter = wf })
		synctest.Wait() // Run started its workers
		if f := failures(probe(t, n.r)); len(f) != 0 {
			t.Fatalf("before the wedge: %v", f)
		}

		wf.armed.Store(true)
		send(t, n.ext.In, ethFrame(extMAC, clientMAC, udpPacket(t, clientIP, serverIP, 40000, 7000, 64, "wedge")))
		<-wf.entered
		time.Sleep(500 * time.Millisecond)
		start := time.Now()
		f := failures(probe(t, n.r))
		if d := time.Since(start); d != time.Second {
			t.Errorf("Probe took %v, want its one-second deadline", d)
		}
		p, ok := f["ext0 queue 0"]
		if len(f) != 1 || !ok {
			t.Fatalf("failures %v, want ext0's worker only", f)
		}
		if p.Answered || p.Busy != 1500*time.Millisecond || !strings.Contains(p.Failure, "inside one batch for 1.5s (wedged)") {
			t.Errorf("wedged worker: %+v, want unanswered, busy 1.5s", p)
		}

		wf.armed.Store(false)
		close(wf.release)
		if f := failures(probe(t, n.r)); len(f) != 0 {
			t.Fatalf("after the wedge: %v", f)
		}
	})
}

// A filter that passes what it must drop fails the probe of every capture
// worker, saying which probe and why.
func TestProbeWrongVerdict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wf := &wedgeFilter{}
		wf.broken.Store(true)
		n := startFakeNode(t, func(c *router.Config) { c.Filter = wf })
		synctest.Wait() // Run started its workers
		f := failures(probe(t, n.r))
		want := map[string]string{
			"ext0 queue 0": "spoofed probe 169.254.0.1 → 198.51.100.254 passed the filter; it must drop it",
			"int0 queue 0": "spoofed probe 169.254.0.1 → 203.0.113.254 passed the filter; it must drop it",
		}
		if len(f) != len(want) {
			t.Errorf("failures %v, want %v", f, want)
		}
		for w, msg := range want {
			if p := f[w]; !p.Answered || p.Failure != msg {
				t.Errorf("%s: %+v, want answered with %q", w, p, msg)
			}
		}
	})
}

// unwakeable hides the fake's Waker: a reader Probe cannot wake.
type unwakeable struct{ r router.FrameReader }

func (u unwakeable) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return u.r.Read(bufs, sizes, offset)
}

type unwakeableLink struct {
	*routertest.FakeLink
}

func (l unwakeableLink) Readers() []router.FrameReader {
	return []router.FrameReader{unwakeable{l.FakeLink}}
}

// A worker whose reader cannot be woken and that waits in Read, inside no
// batch, is idle: unanswered but not failing.
func TestProbeIdleWithoutWaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startFakeNode(t, func(c *router.Config) {
			c.Devices.Links[0] = unwakeableLink{c.Devices.Links[0].(*routertest.FakeLink)}
		})
		synctest.Wait()
		res := probe(t, n.r)
		if f := failures(res); len(f) != 0 {
			t.Fatalf("failures %v, want none", f)
		}
		if res[0].Worker != "ext0 queue 0" || res[0].Answered || !res[1].Answered {
			t.Errorf("results %+v: want ext0's worker unanswered (idle), int0's answered", res)
		}
	})
}

// Probe needs Run.
func TestProbeNotRunning(t *testing.T) {
	cfg := router.TestConfig()
	cfg.Links = []router.Link{{Name: "ext0", Primary: netip.PrefixFrom(extIP, 24)}}
	cfg.ManageKernel = false
	cfg.Devices = &router.Devices{Links: []router.LinkDevice{routertest.NewFakeLink(extMAC, 1500)}, TUN: routertest.NewFakeTUN()}
	cfg.Logger = slog.New(slog.DiscardHandler)
	r, err := router.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Probe(context.Background()); err != router.ErrNotRunning {
		t.Fatalf("Probe before Run: %v, want ErrNotRunning", err)
	}
}
