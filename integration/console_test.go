//go:build linux

package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/vishvananda/netlink"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/lab"
)

// chromium finds Debian's chromium (.ci/run installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("console browser tests need chromium, and CI must run them: .ci/run installs it (apt-get install chromium)")
	}
	t.Skip("console browser tests need chromium (apt-get install chromium; .ci/run installs it)")
	return ""
}

// nsProxy makes node i's management listener (127.0.0.1:9440 inside its
// namespace) reachable from the host, where the browser runs, at the
// returned base URL. It copies bytes only, so the browser's Host and
// Origin are the proxy's, as they would be for any address an operator
// uses. cut(true) breaks every connection and refuses new ones (the node
// unreachable from the browser), cut(false) lets them through again.
func nsProxy(t *testing.T, l *lab.Lab, i int) (base string, cut func(bool)) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	down := false
	cut = func(d bool) {
		mu.Lock()
		defer mu.Unlock()
		down = d
		if d {
			for c := range conns {
				c.Close()
			}
		}
	}
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			front, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			refuse := down
			mu.Unlock()
			if refuse {
				front.Close()
				continue
			}
			var back net.Conn
			err = l.Do(l.Node(i), func() error {
				var err error
				back, err = net.DialTimeout("tcp", lab.MgmtAddr, 2*time.Second)
				return err
			})
			if err != nil {
				front.Close()
				continue
			}
			track(front, true)
			track(back, true)
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				io.Copy(dst, src)
				dst.Close()
				src.Close()
				track(dst, false)
				track(src, false)
			}
			go pipe(front, back)
			go pipe(back, front)
		}
	}()
	return "http://" + ln.Addr().String(), cut
}

// browser starts a headless chromium for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // as root (CI) chromium refuses its sandbox
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil { // start the browser
		t.Fatalf("start chromium %s: %v", exe, err)
	}
	return ctx
}

// jsUntil evaluates the JavaScript expression expr in the page until it
// is true, and returns how long that took.
func jsUntil(t *testing.T, ctx context.Context, expr string, within time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		if err == nil && ok {
			return time.Since(start)
		}
		if time.Since(start) > within {
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("waited %v for %s (%s; err %v); the page shows:\n%s", within, what, expr, err, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func jsString(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

// login fills the console's login form.
func login(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#login-form button[type=submit]")),
	)
	if err != nil {
		t.Fatalf("log in: %v", err)
	}
}

// clientNeigh is the client's ARP entry for ip ("" when none).
func clientNeigh(t *testing.T, l *lab.Lab, ip netip.Addr) string {
	t.Helper()
	h, err := l.Netlink(l.Client())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ns, err := h.NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if n.IP.Equal(ip.AsSlice()) && n.HardwareAddr != nil {
			return n.HardwareAddr.String()
		}
	}
	return ""
}

// TestConsoleBrowser drives the web console in chromium against a real
// 3-node lab: log in, see the cluster, move a VIP by drag and drop (and
// the client's traffic follow it), close a node from its card, see a cut
// node go down, a read-only session that changes nothing, and a
// cross-origin POST refused.
func TestConsoleBrowser(t *testing.T) {
	t0 := time.Now()
	chromium(t)
	readTok := make([]byte, 24)
	rand.Read(readTok)
	c := newCluster(t, 3, func(i int, cfg *config.Config) {
		cfg.Management.ReadTokenFile = "read.token"
	})
	if err := os.WriteFile(filepath.Join(c.lab.Dir(), "read.token"), []byte(hex.EncodeToString(readTok)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.startAll()
	c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	admin, err := c.lab.AdminToken()
	if err != nil {
		t.Fatal(err)
	}
	base, cutProxy := nsProxy(t, c.lab, 2) // the browser talks to n2
	ctx := browser(t)
	tr := startTraffic(t, c) // the client's UDP stream through its gateway 203.0.113.91

	t.Logf("phase %s at %v", "login", time.Since(t0).Round(100*time.Millisecond))
	// Log in; 3 nodes and 8 VIPs.
	login(t, ctx, base, admin)
	jsUntil(t, ctx, `document.querySelectorAll('.node[data-node]').length === 3 && document.querySelectorAll('#nodes .vip[data-vip]').length === 8`,
		5*time.Second, "3 nodes and 8 VIPs")
	if role := jsString(t, ctx, `document.body.dataset.role`); role != "admin" {
		t.Fatalf("role %q after admin login", role)
	}

	t.Logf("phase %s at %v", "L.BAL", time.Since(t0).Round(100*time.Millisecond))
	// Turn L.BAL off from its badge, then on again: each shown applied,
	// and the cluster's switch follows.
	for _, on := range []bool{false, true} {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button.switch[data-switch="balance"]`))); err != nil {
			t.Fatalf("click L.BAL: %v", err)
		}
		want := map[bool]string{false: "switch balance off", true: "switch balance on"}[on]
		jsUntil(t, ctx, fmt.Sprintf(`[...document.querySelectorAll('#actions li')].some(li => li.dataset.state === 'applied' && li.textContent.includes(%q)) && document.querySelector('button.switch[data-switch="balance"]').getAttribute('aria-pressed') === %q`, want, fmt.Sprint(on)),
			5*time.Second, want+" shown applied")
		if st, err := c.status(3); err != nil || st.Balancing != on {
			t.Errorf("n3's switches after %q in the console: balancing %v (%v)", want, st.Balancing, err)
		}
	}

	t.Logf("phase %s at %v", "drag", time.Since(t0).Round(100*time.Millisecond))
	// Drag the client's gateway VIP from n1 onto n3: the console reports
	// the move applied, the table shows it, the client's ARP entry for the
	// VIP changes to n3's MAC and its traffic keeps flowing.
	gw := netip.MustParseAddr("203.0.113.91")
	n3mac, err := c.lab.HardwareAddr(c.lab.Node(3), lab.ExtIf)
	if err != nil {
		t.Fatal(err)
	}
	if got := clientNeigh(t, c.lab, gw); got == "" || got == n3mac.String() {
		t.Fatalf("client's ARP entry for %v before the move: %q (n3 is %v)", gw, got, n3mac)
	}
	drag := fmt.Sprintf(`(() => {
		const src = document.querySelector('.vip[data-vip="%s"]');
		const dst = document.querySelector('.node[data-node="n3"]');
		const dt = new DataTransfer();
		src.dispatchEvent(new DragEvent('dragstart', {bubbles: true, dataTransfer: dt}));
		dst.dispatchEvent(new DragEvent('dragover', {bubbles: true, cancelable: true, dataTransfer: dt}));
		dst.dispatchEvent(new DragEvent('drop', {bubbles: true, cancelable: true, dataTransfer: dt}));
		src.dispatchEvent(new DragEvent('dragend', {bubbles: true, dataTransfer: dt}));
		return true;
	})()`, gw)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](drag)); err != nil {
		t.Fatalf("drag: %v", err)
	}
	took := jsUntil(t, ctx, `[...document.querySelectorAll('#actions li')].some(li => li.dataset.state === 'applied' && li.textContent.includes('move 203.0.113.91 to n3'))`,
		5*time.Second, "the move shown as applied")
	t.Logf("drag to applied in the console: %v", took)
	jsUntil(t, ctx, `document.querySelector('.node[data-node="n3"] .vip[data-vip="203.0.113.91"]') !== null`, time.Second, "203.0.113.91 in n3's card")
	deadline := time.Now().Add(5 * time.Second)
	for clientNeigh(t, c.lab, gw) != n3mac.String() {
		if time.Now().After(deadline) {
			t.Fatalf("client's ARP entry for %v is %q, want n3's MAC %v after the move", gw, clientNeigh(t, c.lab, gw), n3mac)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st, err := c.status(1); err != nil || owner(st, "203.0.113.91") != "n3" {
		t.Errorf("n1's status after the move: owner %q, %v", owner(st, "203.0.113.91"), err)
	}

	t.Logf("phase %s at %v", "keyboard", time.Since(t0).Round(100*time.Millisecond))
	// Keyboard only: focus a VIP, Enter opens its menu with the first item
	// focused, Enter on it moves the VIP; the console reports it applied.
	// And every control has a name a screen reader can say. (A rebuild of
	// the cards between the focus and the key press, when the rates
	// change, loses the focus: try a few times.)
	for try := 1; ; try++ {
		err = chromedp.Do(ctx,
			chromedp.Focus(chromedp.CSS(`.vip[data-vip="203.0.113.92"]`)),
			chromedp.KeyEvent(kb.Enter))
		if err != nil {
			t.Fatalf("keyboard: %v", err)
		}
		open := jsString(t, ctx, `String(!document.getElementById('menu').hidden && document.activeElement.getAttribute('role') === 'menuitem')`)
		if open == "true" {
			break
		}
		if try == 5 {
			t.Fatalf("Enter on a focused VIP did not open its menu (5 tries); focused: %s", jsString(t, ctx, `document.activeElement.outerHTML.slice(0, 200)`))
		}
	}
	target := jsString(t, ctx, `document.activeElement.dataset.op`)
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	jsUntil(t, ctx, `[...document.querySelectorAll('#actions li')].some(li => li.dataset.state === 'applied' && li.textContent.includes('move 203.0.113.92 to '))`,
		5*time.Second, "the keyboard move ("+target+") shown as applied")
	unnamed := jsString(t, ctx, `String([...document.querySelectorAll('button, [tabindex], input')].filter(e => !(e.getAttribute('aria-label') || e.textContent.trim() || (e.id && document.querySelector('label[for="' + e.id + '"]')))).length)`)
	if unnamed != "0" {
		t.Errorf("%s controls without an accessible name", unnamed)
	}

	t.Logf("phase %s at %v", "close n1", time.Since(t0).Round(100*time.Millisecond))
	// Close n1 from its card: its VIPs leave it.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`.node[data-node="n1"] button[data-action="close"]`))); err != nil {
		t.Fatalf("click close n1: %v", err)
	}
	jsUntil(t, ctx, `document.querySelector('.node[data-node="n1"]').dataset.state === 'closed' && document.querySelectorAll('.node[data-node="n1"] .vip').length === 0 && [...document.querySelectorAll('#actions li')].some(li => li.dataset.state === 'applied' && li.textContent.includes('close node n1'))`,
		5*time.Second, "n1 closed, without VIPs, the action applied")

	t.Logf("phase %s at %v", "cut n3", time.Since(t0).Round(100*time.Millisecond))
	// Cut n3 (it carries the gateway now): the console shows it down
	// within a second.
	if err := c.lab.Cut(3); err != nil {
		t.Fatal(err)
	}
	down := jsUntil(t, ctx, `document.querySelector('.node[data-node="n3"]').dataset.state === 'down'`, 3*time.Second, "n3 down")
	t.Logf("cut to down in the console: %v", down)
	if down > time.Second {
		t.Errorf("n3 shown down %v after the cut, want within 1 s", down)
	}
	jsUntil(t, ctx, `document.querySelectorAll('.node[data-node="n3"] .vip').length === 0 && [...document.querySelectorAll('#moves li')].some(li => li.dataset.reason === 'failover')`,
		3*time.Second, "n3's VIPs failed over, shown with reason failover")
	rep := tr.stream.Stop()
	t.Logf("client stream over move, close and cut: sent %d received %d lost %d, longest gap %v", rep.Sent, rep.Received, rep.Lost, rep.LongestGap)

	t.Logf("phase %s at %v", "reconnect", time.Since(t0).Round(100*time.Millisecond))
	// The browser loses its connection to n2: the console says so, with the
	// data's age, and reconnects by itself once n2 is reachable again.
	cutProxy(true)
	jsUntil(t, ctx, `document.getElementById('conn').dataset.lost === 'true' && /data is \d+ s old/.test(document.getElementById('conn').textContent)`,
		5*time.Second, "the lost connection shown with the data's age")
	cutProxy(false)
	back := jsUntil(t, ctx, `document.getElementById('conn').dataset.lost === 'false'`, 10*time.Second, "the console live again")
	t.Logf("reconnected %v after the node was reachable again", back)

	t.Logf("phase %s at %v", "cross-origin", time.Since(t0).Round(100*time.Millisecond))
	// A cross-origin page (another port: same site, so the SameSite cookie
	// goes along; only the Origin and CSRF checks stop it) posts a node
	// close to the console: refused, and the node logs it.
	evil := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form id=f method=post action="%s/api/v1/nodes/n2/close"></form>`, base)
	})}
	eln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go evil.Serve(eln)
	t.Cleanup(func() { evil.Close() })
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+eln.Addr().String()+"/"), chromedp.Submit(chromedp.CSS("#f"))); err != nil {
		t.Fatalf("cross-origin page: %v", err)
	}
	jsUntil(t, ctx, `document.body.innerText.includes('refused') || document.body.innerText.includes('CSRF')`, 3*time.Second, "the cross-origin POST answered with a refusal")
	time.Sleep(200 * time.Millisecond) // a rotation or two
	if st, err := c.status(2); err != nil || len(st.Closed) != 1 || st.Closed[0] != "n1" {
		t.Errorf("after the cross-origin POST: closed %v (%v), want only n1", st.Closed, err)
	}
	if log, _ := os.ReadFile(c.lab.LogPath(c.lab.Node(2), "ringway")); !strings.Contains(string(log), "refused console request") {
		t.Errorf("n2 did not log the refused cross-origin request")
	}

	t.Logf("phase %s at %v", "read-only", time.Since(t0).Round(100*time.Millisecond))
	// Read-only: log out, log in with the read token: everything shown, no
	// control, and a POST from the page itself (with the session's CSRF
	// token) is refused.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/")); err != nil {
		t.Fatal(err)
	}
	jsUntil(t, ctx, `!document.getElementById('logout').hidden`, 3*time.Second, "the console (still logged in)")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#logout"))); err != nil {
		t.Fatal(err)
	}
	jsUntil(t, ctx, `!document.getElementById('login').hidden`, 3*time.Second, "the login form after logout")
	login(t, ctx, base, hex.EncodeToString(readTok))
	jsUntil(t, ctx, `document.body.dataset.role === 'read-only' && document.querySelectorAll('#nodes .vip[data-vip]').length === 8`, 5*time.Second, "read-only view with 8 VIPs")
	controls, err := chromedp.Run(ctx, chromedp.Evaluate[int](`[...document.querySelectorAll('button.mutate, .mutate button, .vip[draggable="true"], button[data-switch]')].filter(e => e.offsetParent !== null).length`))
	if err != nil {
		t.Fatal(err)
	}
	if controls != 0 {
		t.Errorf("read-only session shows %d controls", controls)
	}
	got := jsString(t, ctx, `fetch('/console/session').then(r => r.json()).then(s => fetch('/api/v1/vips/203.0.113.92/close', {method: 'POST', headers: {'X-CSRF-Token': s.csrf}})).then(r => String(r.status))`)
	if got != "403" {
		t.Errorf("read-only session POST: %s, want 403", got)
	}
	if st, err := c.status(2); err != nil {
		t.Error(err)
	} else if v, _ := st.Lookup(netip.MustParseAddr("203.0.113.92")); v.Closed {
		t.Error("a read-only session closed 203.0.113.92")
	}
}
