package mgmt

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// flowBackend is a fakeBackend with a flow table: it answers fl (or err)
// and records the queries it was asked.
type flowBackend struct {
	*fakeBackend
	mu      sync.Mutex
	fl      Flows
	err     error
	queries []FlowQuery
}

var _ FlowBackend = (*flowBackend)(nil)

var flowEq = cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{})

func (f *flowBackend) Flows(q FlowQuery) (Flows, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	fl := f.fl
	fl.Flows = append([]Flow(nil), f.fl.Flows...) // the server sorts in place
	return fl, f.err
}

// serve serves b's API on a test server and returns a client for it.
func serve(t *testing.T, b Backend) *Client {
	t.Helper()
	s := &Server{cfg: Config{Token: testToken}, backend: b, log: nopLogger()}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &Client{Base: ts.URL, Token: testToken, HTTP: ts.Client()}
}

// get sends an authorized GET and returns the status code and body.
func get(t *testing.T, c *Client, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.Base+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

var (
	client = netip.MustParseAddr("203.0.113.10")
	server = netip.MustParseAddr("198.51.100.10")
	// sampleFlows are in no particular order, as a backend may return them.
	sampleFlows = []Flow{
		{Proto: "udp", Src: netip.AddrPortFrom(client, 40000), Dst: netip.AddrPortFrom(server, 7000),
			State: "assured", Rule: "clients-to-service", AgeS: 2.5, IdleS: 0.5, ExpiresS: 119.5,
			PacketsOrig: 10, PacketsReply: 9, BytesOrig: 840, BytesReply: 756},
		{Proto: "icmp", Src: netip.AddrPortFrom(server, 0), Dst: netip.AddrPortFrom(client, 0), ICMPID: 4242,
			State: "icmp", Rule: "inside-out", AgeS: 1, IdleS: 1, ExpiresS: 29, PacketsOrig: 1, BytesOrig: 84},
		{Proto: "tcp", Src: netip.AddrPortFrom(client, 51000), Dst: netip.AddrPortFrom(server, 443),
			State: "established", Rule: "default", AgeS: 3600, IdleS: 12, ExpiresS: 431988,
			PacketsOrig: 1200, PacketsReply: 2400, BytesOrig: 96000, BytesReply: 3400000},
	}
)

func newFlowBackend(flows ...Flow) *flowBackend {
	return &flowBackend{fakeBackend: &fakeBackend{st: Status{Node: "n1"}},
		fl: Flows{Node: "n1", Enabled: true, Count: 1234, Max: 1 << 20, Flows: flows}}
}

// TestFlowsJSON pins the JSON an operator's scripts read: field names,
// endpoints as "addr:port", the echo id only for ICMP, oldest flow first.
func TestFlowsJSON(t *testing.T) {
	c := serve(t, newFlowBackend(sampleFlows[0], sampleFlows[2]))
	code, body := get(t, c, "/api/v1/flows", testToken)
	want := `{
  "node": "n1",
  "enabled": true,
  "count": 1234,
  "max": 1048576,
  "flows": [
    {
      "proto": "tcp",
      "src": "203.0.113.10:51000",
      "dst": "198.51.100.10:443",
      "state": "established",
      "rule": "default",
      "age_s": 3600,
      "idle_s": 12,
      "expires_s": 431988,
      "packets_orig": 1200,
      "packets_reply": 2400,
      "bytes_orig": 96000,
      "bytes_reply": 3400000
    },
    {
      "proto": "udp",
      "src": "203.0.113.10:40000",
      "dst": "198.51.100.10:7000",
      "state": "assured",
      "rule": "clients-to-service",
      "age_s": 2.5,
      "idle_s": 0.5,
      "expires_s": 119.5,
      "packets_orig": 10,
      "packets_reply": 9,
      "bytes_orig": 840,
      "bytes_reply": 756
    }
  ],
  "truncated": false
}
`
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/flows: %d %s", code, body)
	}
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}

	c = serve(t, newFlowBackend(sampleFlows[1]))
	if _, body := get(t, c, "/api/v1/flows", testToken); !strings.Contains(body, `"src": "198.51.100.10:0",
      "dst": "203.0.113.10:0",
      "icmp_id": 4242,`) {
		t.Errorf("ICMP echo flow: want zero ports and icmp_id:\n%s", body)
	}
}

// TestFlowsRoundTrip: the client returns what the node's backend said,
// oldest first, and sends the query the operator gave.
func TestFlowsRoundTrip(t *testing.T) {
	b := newFlowBackend(sampleFlows...)
	c := serve(t, b)
	got, err := c.Flows(context.Background(), FlowQuery{Addr: client, Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	want := b.fl
	want.Flows = []Flow{sampleFlows[2], sampleFlows[0], sampleFlows[1]}
	if diff := cmp.Diff(want, got, flowEq); diff != "" {
		t.Errorf("flows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]FlowQuery{{Addr: client, Limit: 50}}, b.queries, addrEq); diff != "" {
		t.Errorf("query reaching the backend (-want +got):\n%s", diff)
	}
	if _, err := c.Flows(context.Background(), FlowQuery{Limit: -1}); err == nil || !strings.Contains(err.Error(), "from 1 to 10000") {
		t.Errorf("limit -1: err = %v, want the client to refuse it", err)
	}
	if len(b.queries) != 1 {
		t.Errorf("a query the client refused reached the node: %+v", b.queries)
	}
}

// TestFlowsQuery: the query string is checked before the backend sees it,
// and errors say what to write.
func TestFlowsQuery(t *testing.T) {
	for _, tc := range []struct {
		query string
		code  int
		want  string    // fragment of the error, for a 400
		q     FlowQuery // what the backend sees, for a 200
	}{
		{"", http.StatusOK, "", FlowQuery{Limit: DefaultFlowLimit}},
		{"?addr=198.51.100.10", http.StatusOK, "", FlowQuery{Addr: server, Limit: DefaultFlowLimit}},
		{"?addr=198.51.100.10&limit=10000", http.StatusOK, "", FlowQuery{Addr: server, Limit: 10000}},
		{"?limit=1", http.StatusOK, "", FlowQuery{Limit: 1}},
		{"?addr=198.51.100.300", http.StatusBadRequest, `bad addr "198.51.100.300": write an IPv4 address, e.g. addr=192.0.2.7`, FlowQuery{}},
		{"?addr=198.51.100.10:80", http.StatusBadRequest, "write an IPv4 address", FlowQuery{}},
		{"?addr=2001:db8::1", http.StatusBadRequest, "the filter tracks IPv4 only", FlowQuery{}},
		{"?limit=0", http.StatusBadRequest, `bad limit "0": write a whole number from 1 to 10000 (default 1000)`, FlowQuery{}},
		{"?limit=10001", http.StatusBadRequest, "from 1 to 10000", FlowQuery{}},
		{"?limit=many", http.StatusBadRequest, "from 1 to 10000", FlowQuery{}},
		{"?adr=198.51.100.10", http.StatusBadRequest, `unknown query parameter "adr"; the known ones are addr and limit`, FlowQuery{}},
	} {
		b := newFlowBackend()
		c := serve(t, b)
		code, body := get(t, c, "/api/v1/flows"+tc.query, testToken)
		var e apiError
		_ = json.Unmarshal([]byte(body), &e)
		if code != tc.code || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%q: %d %s, want %d mentioning %q", tc.query, code, body, tc.code, tc.want)
		}
		var want []FlowQuery
		if tc.code == http.StatusOK {
			want = []FlowQuery{tc.q}
		}
		if diff := cmp.Diff(want, b.queries, addrEq); diff != "" {
			t.Errorf("%q: queries reaching the backend (-want +got):\n%s", tc.query, diff)
		}
	}
}

func TestFlowsNeedToken(t *testing.T) {
	b := newFlowBackend(sampleFlows...)
	c := serve(t, b)
	for _, tok := range []string{"", "wrong-token-0000000"} {
		code, body := get(t, c, "/api/v1/flows", tok)
		if code != http.StatusUnauthorized || strings.Contains(body, "203.0.113.10") {
			t.Errorf("token %q: %d %s, want 401 and no flows", tok, code, body)
		}
	}
	if len(b.queries) != 0 {
		t.Errorf("the backend was asked without a token: %+v", b.queries)
	}
}

// TestFlowsNotImplemented: a backend without a flow table answers 501
// with a reason, not 404 (the route exists) and not an empty list.
func TestFlowsNotImplemented(t *testing.T) {
	_, c := newTest(t)
	_, err := c.Flows(context.Background(), FlowQuery{})
	if err == nil || !strings.Contains(err.Error(), "501 Not Implemented: this node cannot list flows") {
		t.Errorf("err = %v, want 501 and a reason", err)
	}
}

// TestFlowsFilterOff: a node with the filter off says so with a 200 and
// an empty list ("flows": [], not null).
func TestFlowsFilterOff(t *testing.T) {
	b := newFlowBackend()
	b.fl = Flows{Node: "n1"}
	c := serve(t, b)
	code, body := get(t, c, "/api/v1/flows", testToken)
	if code != http.StatusOK || !strings.Contains(body, `"enabled": false`) || !strings.Contains(body, `"flows": []`) {
		t.Errorf("filter off: %d %s", code, body)
	}
}

// TestFlowsTrimmed: a backend that returns more than the limit is cut to
// it, oldest kept, and the answer says it was truncated.
func TestFlowsTrimmed(t *testing.T) {
	c := serve(t, newFlowBackend(sampleFlows...))
	got, err := c.Flows(context.Background(), FlowQuery{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Truncated || len(got.Flows) != 2 || got.Flows[0].Proto != "tcp" || got.Flows[1].Proto != "udp" {
		t.Errorf("limit 2 of 3: %+v, want the two oldest and truncated", got)
	}
}

func TestFlowsBackendError(t *testing.T) {
	b := newFlowBackend()
	b.err = errors.New("filter is restarting")
	c := serve(t, b)
	_, err := c.Flows(context.Background(), FlowQuery{})
	if err == nil || !strings.Contains(err.Error(), "500 Internal Server Error: flows: filter is restarting") {
		t.Errorf("err = %v, want a 500 with the backend's reason", err)
	}
}

// TestFlowsLargestAnswer: MaxFlowLimit flows with long fields fit in what
// the client reads; raising the cap past that would break `ringway flows`.
func TestFlowsLargestAnswer(t *testing.T) {
	big := Flow{Proto: "icmp", Src: netip.MustParseAddrPort("203.0.113.100:65535"), Dst: netip.MustParseAddrPort("198.51.100.100:65535"),
		ICMPID: 65535, State: "established", Rule: strings.Repeat("r", 64),
		AgeS: 123456.789012345, IdleS: 123456.789012345, ExpiresS: 123456.789012345,
		PacketsOrig: 1 << 62, PacketsReply: 1 << 62, BytesOrig: 1 << 62, BytesReply: 1 << 62}
	flows := make([]Flow, MaxFlowLimit)
	for i := range flows {
		flows[i] = big
	}
	c := serve(t, newFlowBackend(flows...))
	got, err := c.Flows(context.Background(), FlowQuery{Limit: MaxFlowLimit})
	if err != nil || len(got.Flows) != MaxFlowLimit {
		t.Fatalf("%d flows of %d, %v", len(got.Flows), MaxFlowLimit, err)
	}
}

// TestStatusFilter: the filter's counts ride in the status when the node
// reports them and are absent from the JSON when it does not.
func TestStatusFilter(t *testing.T) {
	b, c := newTest(t)
	if _, body := get(t, c, "/api/v1/status", testToken); strings.Contains(body, `"filter"`) {
		t.Errorf("status without a filter mentions one:\n%s", body)
	}
	b.st.Filter = &FilterStatus{Enabled: true, Flows: 3, MaxFlows: 1 << 20, NewFlows: 7, Drops: map[string]uint64{"rule": 5}}
	got, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b.st.Filter, got.Filter); diff != "" {
		t.Errorf("filter status (-want +got):\n%s", diff)
	}
	if _, body := get(t, c, "/api/v1/status", testToken); !strings.Contains(body, `"filter": {
    "enabled": true,
    "flows": 3,
    "max_flows": 1048576,
    "new_flows": 7,
    "drops": {
      "rule": 5
    }
  }`) {
		t.Errorf("status JSON:\n%s", body)
	}
}
