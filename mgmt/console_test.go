package mgmt

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// consoleClient is a browser-like client: a cookie jar, and the Origin a
// page served by the console sends.
type consoleClient struct {
	t      *testing.T
	base   string
	hc     *http.Client
	origin string
	csrf   string
}

func newConsoleClient(t *testing.T, s *Server) *consoleClient {
	jar, _ := cookiejar.New(nil)
	base := "http://" + s.Addr().String()
	hc := &http.Client{Jar: jar, Timeout: 5 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	return &consoleClient{t: t, base: base, hc: hc, origin: base}
}

func (c *consoleClient) post(path, body string) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if c.origin != "" {
		req.Header.Set("Origin", c.origin)
	}
	if c.csrf != "" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (c *consoleClient) login(token string) *http.Response {
	c.t.Helper()
	resp := c.post("/console/login", `{"token":"`+token+`"}`)
	if resp.StatusCode == http.StatusOK {
		var s sessionJSON
		json.NewDecoder(resp.Body).Decode(&s)
		c.csrf = s.CSRF
	}
	return resp
}

func TestConsoleLoginAndCSRF(t *testing.T) {
	const readToken = "read-only-token-0123456789"
	b := &fakeBackend{st: Status{Node: "n1", VIPs: []VIP{{VIP: netip.MustParseAddr("203.0.113.91"), Owner: "n1"}}}}
	s := startServer(t, Config{ReadToken: readToken}, b)

	// The page and its assets are served with the security headers.
	c := newConsoleClient(t, s)
	for _, p := range []string{"/", "/console/app.js", "/console/style.css"} {
		resp, err := c.hc.Get(c.base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if resp.StatusCode != 200 || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
			strings.Contains(h.Get("Content-Security-Policy"), "unsafe-inline") || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %s, headers %v", p, resp.Status, h)
		}
	}

	// Wrong token: 401, no cookie.
	if resp := c.login("wrong-token-0123456789"); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("wrong token: %s, cookies %v", resp.Status, resp.Cookies())
	}
	// Login from a foreign origin is refused.
	evil := newConsoleClient(t, s)
	evil.origin = "http://evil.example"
	if resp := evil.login(testToken); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login from a foreign origin: %s", resp.Status)
	}

	resp := c.login(testToken)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin login: %s", resp.Status)
	}
	ck := resp.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Secure {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure without TLS", ck)
	}
	// With the cookie and the CSRF token, an operation goes through.
	if resp := c.post("/api/v1/vips/203.0.113.91/close", ""); resp.StatusCode != http.StatusAccepted {
		t.Errorf("close with session and CSRF token: %s", resp.Status)
	}
	// Without the CSRF token, or from another origin, it does not.
	noCSRF := *c
	noCSRF.csrf = ""
	if resp := noCSRF.post("/api/v1/vips/203.0.113.91/open", ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST without the CSRF token: %s", resp.Status)
	}
	cross := *c
	cross.origin = "http://evil.example"
	if resp := cross.post("/api/v1/vips/203.0.113.91/open", ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin POST: %s", resp.Status)
	}
	noOrigin := *c
	noOrigin.origin = ""
	if resp := noOrigin.post("/api/v1/vips/203.0.113.91/open", ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST without Origin: %s", resp.Status)
	}
	if len(b.ops) != 1 {
		t.Errorf("ops reaching the backend: %v, want only the close", b.ops)
	}

	// A read-only session reads and cannot change anything.
	ro := newConsoleClient(t, s)
	if resp := ro.login(readToken); resp.StatusCode != http.StatusOK {
		t.Fatalf("read-only login: %s", resp.Status)
	}
	if resp := ro.post("/api/v1/vips/203.0.113.91/open", ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("read-only session POST: %s", resp.Status)
	}
	if resp, err := ro.hc.Get(ro.base + "/api/v1/status"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("read-only session status: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// Logout ends the session.
	if resp := c.post("/console/logout", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("logout: %s", resp.Status)
	}
	if resp, err := c.hc.Get(c.base + "/api/v1/status"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status after logout: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// TestEventStream: the stream sends the status at once, a change within
// the stream period, and a beat at least every second; it outlives the
// server's 10 s read and write timeouts (checked with a short stream).
func TestEventStream(t *testing.T) {
	b := &fakeBackend{st: Status{Node: "n1", Mode: "member"}}
	s := startServer(t, Config{}, b)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+s.Addr().String()+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	rd := bufio.NewReader(resp.Body)
	next := func() (Status, time.Time) {
		t.Helper()
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				var st Status
				if err := json.Unmarshal([]byte(d), &st); err != nil {
					t.Fatal(err)
				}
				return st, time.Now()
			}
		}
	}
	if st, _ := next(); st.Mode != "member" {
		t.Fatalf("first event: %+v", st)
	}
	b.mu.Lock()
	b.st.Mode = "limbo"
	b.mu.Unlock()
	changed := time.Now()
	st, at := next()
	if st.Mode != "limbo" || at.Sub(changed) > 600*time.Millisecond {
		t.Errorf("change arrived after %v as %q; want limbo within 2 stream periods", at.Sub(changed), st.Mode)
	}
	_, beat := next()
	if d := beat.Sub(at); d > 1500*time.Millisecond {
		t.Errorf("beat after %v, want about %v", d, streamBeat)
	}
}
