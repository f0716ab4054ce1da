package mgmt

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type switchBackend struct {
	fakeBackend
	switches []SwitchOp
}

func (b *switchBackend) Switch(op SwitchOp) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.switches = append(b.switches, op)
	return uint64(len(b.switches)), nil
}

func TestSwitchOps(t *testing.T) {
	b := &switchBackend{}
	s := &Server{cfg: Config{Token: testToken}, backend: b, log: nopLogger()}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	c := &Client{Base: ts.URL, Token: testToken, HTTP: ts.Client()}
	ctx := context.Background()
	for _, op := range []SwitchOp{{"balance", false}, {"auto", true}} {
		if err := c.Switch(ctx, op); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]SwitchOp{{"balance", false}, {"auto", true}}, b.switches); diff != "" {
		t.Errorf("switches (-want +got):\n%s", diff)
	}
	if err := c.Switch(ctx, SwitchOp{Switch: "lbal"}); err == nil {
		t.Error("client accepted an unknown switch")
	}
	for path, want := range map[string]int{
		"/api/v1/switches/balance/maybe": http.StatusBadRequest,
		"/api/v1/switches/frob/on":       http.StatusBadRequest,
		"/api/v1/switches/auto/off":      http.StatusAccepted,
	} {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	// Without the token nothing is switched.
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/api/v1/switches/balance/on", nil)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(b.switches) != 3 {
		t.Errorf("unauthenticated switch: %d, %d switches", resp.StatusCode, len(b.switches))
	}
	// A backend that cannot switch says so.
	_, c2 := newTest(t)
	if err := c2.Switch(ctx, SwitchOp{Switch: "auto", On: true}); err == nil || !strings.Contains(err.Error(), "501") {
		t.Errorf("switch on a backend without switches: %v, want a 501", err)
	}
}
