package mgmt

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type reloadBackend struct {
	fakeBackend
	opts []ReloadOptions
}

func (b *reloadBackend) Reload(ctx context.Context, o ReloadOptions) ReloadResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.opts = append(b.opts, o)
	return ReloadResult{Outcome: "applied", Epoch: uint64(len(b.opts))}
}

// TestReloadOptions: POST /api/v1/reload takes no body or a JSON body
// with drop_flows, which reaches the node; anything else is refused
// without reloading.
func TestReloadOptions(t *testing.T) {
	b := &reloadBackend{}
	s := &Server{cfg: Config{Token: testToken}, backend: b, log: nopLogger()}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	c := &Client{Base: ts.URL, Token: testToken, HTTP: ts.Client()}
	ctx := context.Background()
	for _, o := range []ReloadOptions{{}, {DropFlows: true}} {
		if res, err := c.Reload(ctx, o); err != nil || res.Outcome != "applied" {
			t.Fatalf("reload %+v: %+v, %v", o, res, err)
		}
	}
	for body, want := range map[string]int{
		``:                    http.StatusOK,
		`{"drop_flows":true}`: http.StatusOK,
		`{"drop":true}`:       http.StatusBadRequest,
		`drop_flows`:          http.StatusBadRequest,
	} {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/api/v1/reload", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST /api/v1/reload %q: %d, want %d", body, resp.StatusCode, want)
		}
	}
	want := []ReloadOptions{{}, {DropFlows: true}}
	b.mu.Lock()
	got := b.opts
	b.mu.Unlock()
	if len(got) != 4 || got[0] != want[0] || got[1] != want[1] || got[2].DropFlows == got[3].DropFlows {
		t.Errorf("the node got %+v, want %+v then one of each", got, want)
	}
}
