package mgmt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const testToken = "0123456789abcdef0123"

var addrEq = cmpopts.EquateComparable(netip.Addr{})

type fakeBackend struct {
	mu      sync.Mutex
	st      Status
	ops     []VIPOp
	nodeOps []NodeOp
}

func (f *fakeBackend) Node(op NodeOp) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if op.Node == "n9" {
		return fmt.Errorf("node n9: %w", ErrNotFound)
	}
	f.nodeOps = append(f.nodeOps, op)
	return nil
}

func (f *fakeBackend) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeBackend) VIP(op VIPOp) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	found := false
	for _, v := range f.st.VIPs {
		found = found || v.VIP == op.VIP
	}
	if !found {
		return fmt.Errorf("VIP %s: %w", op.VIP, ErrNotFound)
	}
	if op.Node == "n9" {
		return fmt.Errorf("node n9: %w", ErrNotFound)
	}
	f.ops = append(f.ops, op)
	return nil
}

func newTest(t *testing.T) (*fakeBackend, *Client) {
	t.Helper()
	b := &fakeBackend{st: Status{
		Cluster: "lab", Node: "n1", Mode: "member", Members: []string{"n1", "n2"},
		VIPs: []VIP{{VIP: netip.MustParseAddr("203.0.113.91"), Subnet: "ext", Owner: "n1", Persistence: "none"}},
	}}
	s := &Server{cfg: Config{Token: testToken}, backend: b}
	s.log = nopLogger()
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return b, &Client{Base: ts.URL, Token: testToken, HTTP: ts.Client()}
}

func TestStatusNeedsToken(t *testing.T) {
	b, c := newTest(t)
	ctx := context.Background()
	got, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b.Status(), got, addrEq); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	for _, tok := range []string{"", "wrong-token-0000000", testToken + "x"} {
		bad := *c
		bad.Token = tok
		if _, err := bad.Status(ctx); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("token %q: err = %v, want 401", tok, err)
		}
	}
	resp, err := c.HTTP.Get(c.Base + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz without token: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestVIPOps(t *testing.T) {
	vip := netip.MustParseAddr("203.0.113.91")
	tests := []struct {
		op      VIPOp
		wantErr string // "" = accepted
	}{
		{VIPOp{Op: "move", VIP: vip, Node: "n2"}, ""},
		{VIPOp{Op: "close", VIP: vip}, ""},
		{VIPOp{Op: "open", VIP: vip}, ""},
		{VIPOp{Op: "move", VIP: vip}, "needs a target node"},
		{VIPOp{Op: "move", VIP: vip, Node: "n9"}, "404"},
		{VIPOp{Op: "prefer", VIP: netip.MustParseAddr("203.0.113.99")}, "404"},
		{VIPOp{Op: "explode", VIP: vip}, "unknown VIP operation"},
		{VIPOp{Op: "close", VIP: vip, Node: "n2"}, "takes no node"},
	}
	b, c := newTest(t)
	var want []VIPOp
	for _, tt := range tests {
		err := c.VIP(context.Background(), tt.op)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%+v: %v", tt.op, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%+v: err = %v, want it to mention %q", tt.op, err, tt.wantErr)
		}
		if tt.wantErr == "" {
			want = append(want, tt.op)
		}
	}
	if diff := cmp.Diff(want, b.ops, addrEq); diff != "" {
		t.Errorf("ops reaching the backend (-want +got):\n%s", diff)
	}
}

func TestServerRejectsBadRequests(t *testing.T) {
	_, c := newTest(t)
	for _, tc := range []struct{ path, body, want string }{
		{"/api/v1/vips/not-an-ip/close", "", "bad VIP"},
		{"/api/v1/vips/203.0.113.91/move", "{", "JSON body"},
		{"/api/v1/vips/203.0.113.91/move", `{"node":"n2","x":1}`, "unknown field"},
	} {
		req, _ := http.NewRequest(http.MethodPost, c.Base+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := c.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		_, _ = fmt.Fprint(&sb, resp.Status)
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(buf[:n]), tc.want) {
			t.Errorf("%s %q: %s %s, want 400 mentioning %q", tc.path, tc.body, resp.Status, buf[:n], tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want error
	}{
		{Config{Listen: "127.0.0.1:0", Token: testToken}, nil},
		{Config{Token: testToken}, errors.New("no listen address")},
		{Config{Listen: "127.0.0.1:0", Token: "short"}, errors.New("at least 16")},
		{Config{Listen: "127.0.0.1:0", Token: testToken, TLSCert: "c.pem"}, errors.New("both")},
		{Config{Listen: "127.0.0.1:0", Token: testToken, MaxConns: -1}, errors.New("MaxConns -1")},
	} {
		err := tc.cfg.validate()
		if (err == nil) != (tc.want == nil) || (err != nil && !strings.Contains(err.Error(), tc.want.Error())) {
			t.Errorf("%+v: err = %v, want %v", tc.cfg, err, tc.want)
		}
	}
}

func TestRunServesAndStops(t *testing.T) {
	b := &fakeBackend{st: Status{Node: "n1"}}
	s, err := NewServer(Config{Listen: "127.0.0.1:0", Token: testToken}, b)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	c := NewClient(s.Addr().String(), testToken, false)
	st, err := c.Status(context.Background())
	if err != nil || st.Node != "n1" {
		t.Fatalf("status = %+v, %v", st, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if _, err := c.Status(context.Background()); err == nil {
		t.Fatal("server still answers after Run returned")
	}
}

// TestMaxConns: connections beyond MaxConns wait until one closes; idle
// clients cannot take the node's file descriptors without bound.
func TestMaxConns(t *testing.T) {
	b := &fakeBackend{st: Status{Node: "n1"}}
	s, err := NewServer(Config{Listen: "127.0.0.1:0", Token: testToken, MaxConns: 2}, b)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	var idle []net.Conn
	for range 2 {
		conn, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		idle = append(idle, conn)
	}
	c := NewClient(s.Addr().String(), testToken, false)
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	if _, err := c.Status(short); err == nil {
		t.Fatal("a third connection was served while two held both slots")
	}
	idle[0].Close()
	long, cancelLong := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelLong()
	if st, err := c.Status(long); err != nil || st.Node != "n1" {
		t.Fatalf("after a slot came free: status %+v, %v", st, err)
	}
}

// TestMetricsEndpoint: /metrics serves Config.Metrics behind the token, and
// is absent without it.
func TestMetricsEndpoint(t *testing.T) {
	b := &fakeBackend{st: Status{Node: "n1"}}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ringway_test 1\n") })
	for _, tc := range []struct {
		name    string
		handler http.Handler
		token   string
		want    string // "" = an error
	}{
		{"served", metrics, testToken, "ringway_test 1\n"},
		{"needs the token", metrics, "wrong-token-0123456789", ""},
		{"absent when not configured", nil, testToken, ""},
	} {
		s, err := NewServer(Config{Listen: "127.0.0.1:0", Token: testToken, Metrics: tc.handler}, b)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go s.Run(ctx)
		got, err := NewClient(s.Addr().String(), tc.token, false).Metrics(context.Background())
		if tc.want == "" && err == nil {
			t.Errorf("%s: got %q, want an error", tc.name, got)
		}
		if tc.want != "" && (err != nil || got != tc.want) {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
		cancel()
		s.Close()
	}
}

func TestNodeOps(t *testing.T) {
	b, c := newTest(t)
	ctx := context.Background()
	if err := c.Node(ctx, NodeOp{Op: "close", Node: "n2"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(ctx, NodeOp{Op: "open", Node: "n2"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]NodeOp{{"close", "n2"}, {"open", "n2"}}, b.nodeOps); diff != "" {
		t.Errorf("ops (-want +got):\n%s", diff)
	}
	if err := c.Node(ctx, NodeOp{Op: "close", Node: "n9"}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown node: %v, want a 404", err)
	}
	if err := c.Node(ctx, NodeOp{Op: "drain", Node: "n2"}); err == nil {
		t.Error("unknown op accepted by the client")
	}
}

func TestBucketQuantile(t *testing.T) {
	h := []uint64{0, 5, 0, 4, 1} // 10 samples: 5 ≤ 2 µs, 9 ≤ 8 µs
	for _, c := range []struct {
		q    float64
		want int
	}{{0.5, 2}, {0.9, 8}, {0.99, 16}, {1, 16}} {
		if got := BucketQuantile(h, c.q); got != c.want {
			t.Errorf("q %v: %d, want %d", c.q, got, c.want)
		}
	}
	if got := BucketQuantile(nil, 0.5); got != 0 {
		t.Errorf("empty: %d", got)
	}
}
