package mgmt

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// fromAddr returns a client whose connections come from the loopback
// address src (Linux routes all of 127/8 to lo).
func fromAddr(t *testing.T, base, token, src string) *Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &Client{Base: "http://" + base, Token: token, HTTP: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
}

func startServer(t *testing.T, cfg Config, b Backend) *Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	s, err := NewServer(cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	return s
}

// TestIdleConnsFromOneAddress: the security review's finding. 100 idle,
// unauthenticated connections from one address take at most its
// per-address share of the slots, the operator's request from another
// address is answered at once, and the idle ones are closed after
// UnauthIdle.
func TestIdleConnsFromOneAddress(t *testing.T) {
	b := &fakeBackend{st: Status{Node: "n1"}}
	s := startServer(t, Config{UnauthIdle: 500 * time.Millisecond}, b)
	var idle []net.Conn
	for range 100 {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := fromAddr(t, s.Addr().String(), testToken, "127.0.0.2").Status(ctx)
	if err != nil || st.Node != "n1" {
		t.Fatalf("operator's request from another address while 100 idle connections are open: %+v, %v", st, err)
	}
	t.Logf("answered in %v", time.Since(start))
	// Every idle connection is closed by the server: over the cap at
	// once, the others after UnauthIdle.
	deadline := time.Now().Add(3 * time.Second)
	for i, c := range idle {
		c.SetReadDeadline(deadline)
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
			t.Fatalf("idle connection %d: read %v, want the server to close it within UnauthIdle", i, err)
		}
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "reset by peer")
}

// TestAuthenticatedKeepAliveSurvivesUnauthIdle: an operator's keep-alive
// connection is not closed by the short timeout for strangers.
func TestAuthenticatedKeepAliveSurvivesUnauthIdle(t *testing.T) {
	b := &fakeBackend{st: Status{Node: "n1"}}
	s := startServer(t, Config{UnauthIdle: 200 * time.Millisecond}, b)
	var dials int
	var mu sync.Mutex
	d := &net.Dialer{}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, n, a string) (net.Conn, error) {
			mu.Lock()
			dials++
			mu.Unlock()
			return d.DialContext(ctx, n, a)
		}}
	defer tr.CloseIdleConnections()
	c := &Client{Base: "http://" + s.Addr().String(), Token: testToken, HTTP: &http.Client{Transport: tr}}
	for range 3 {
		if _, err := c.Status(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond)
	}
	if dials != 1 {
		t.Errorf("%d connections for 3 requests 400 ms apart; the authenticated keep-alive should have stayed open", dials)
	}
}

// logCounter counts log lines that contain a string.
type logCounter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logCounter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logCounter) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

// TestWrongTokens: 1,000 wrong tokens from one address are mostly refused
// without being checked (the address is locked out), logged a bounded
// number of times, and do not lock out another address.
func TestWrongTokens(t *testing.T) {
	var logs logCounter
	b := &fakeBackend{st: Status{Node: "n1"}}
	s := startServer(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, b)
	bad := fromAddr(t, s.Addr().String(), "wrong-token-0123456789", "127.0.0.3")
	start := time.Now()
	var checked, locked int
	for range 1000 {
		_, err := bad.Status(context.Background())
		switch {
		case err == nil:
			t.Fatal("a wrong token was accepted")
		case strings.Contains(err.Error(), "401"):
			checked++
		case strings.Contains(err.Error(), "429"):
			locked++
		default:
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	// The bucket allows failBurst, then one per failRefill.
	maxChecked := failBurst + int(elapsed/failRefill) + 1
	t.Logf("1000 wrong tokens in %v: %d checked (401), %d refused unchecked (429), %d log lines", elapsed, checked, locked, logs.count("authentication failed"))
	if checked > maxChecked || checked < failBurst {
		t.Errorf("%d wrong tokens were checked in %v; want %d..%d", checked, elapsed, failBurst, maxChecked)
	}
	if elapsed < time.Duration(failBurst)*failDelay {
		t.Errorf("1000 wrong tokens took %v; each checked one should take %v", elapsed, failDelay)
	}
	if n := logs.count("authentication failed"); n < 1 || n > failLogBurst+int(elapsed/failLogRefill)+1 {
		t.Errorf("%d log lines about wrong tokens, want 1..%d", n, failLogBurst+1)
	}
	// The right token from the locked address is refused too (checking
	// it would let a guesser learn), from another address it works.
	if _, err := fromAddr(t, s.Addr().String(), testToken, "127.0.0.3").Status(context.Background()); err == nil || !strings.Contains(err.Error(), "429") {
		t.Errorf("right token from the locked-out address: %v, want 429", err)
	}
	if _, err := fromAddr(t, s.Addr().String(), testToken, "127.0.0.4").Status(context.Background()); err != nil {
		t.Errorf("right token from another address: %v", err)
	}
	if failed, lockedN := s.fails.counts(); failed != uint64(checked) || lockedN < uint64(locked) {
		t.Errorf("counts %d failed %d locked; saw %d, %d", failed, lockedN, checked, locked)
	}
}

// TestReadOnlyToken: the read token reads status and metrics, and is
// refused (403) for every operation.
func TestReadOnlyToken(t *testing.T) {
	const readToken = "read-only-token-0123456789"
	b := &fakeBackend{st: Status{Node: "n1", VIPs: []VIP{{VIP: netip.MustParseAddr("203.0.113.91")}}}}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "m 1\n") })
	s := startServer(t, Config{ReadToken: readToken, Metrics: metrics}, b)
	c := NewClient(s.Addr().String(), readToken, false)
	ctx := context.Background()
	if st, err := c.Status(ctx); err != nil || st.Node != "n1" {
		t.Errorf("status with the read token: %+v, %v", st, err)
	}
	if m, err := c.Metrics(ctx); err != nil || m != "m 1\n" {
		t.Errorf("metrics with the read token: %q, %v", m, err)
	}
	vip := netip.MustParseAddr("203.0.113.91")
	for _, err := range []error{
		c.VIP(ctx, VIPOp{Op: "move", VIP: vip, Node: "n2"}),
		c.VIP(ctx, VIPOp{Op: "close", VIP: vip}),
		c.Node(ctx, NodeOp{Op: "close", Node: "n1"}),
	} {
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("operation with the read token: %v, want 403", err)
		}
	}
	if len(b.ops) != 0 || len(b.nodeOps) != 0 {
		t.Errorf("operations reached the backend: %v %v", b.ops, b.nodeOps)
	}
	if err := NewClient(s.Addr().String(), testToken, false).VIP(ctx, VIPOp{Op: "close", VIP: vip}); err != nil {
		t.Errorf("admin token: %v", err)
	}
}
