package mgmt

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The web console (the patent's Remote Management Console, Figure 12): a
// static page and script embedded in the binary (no build step, nothing
// fetched from elsewhere), talking to the same API as the CLI. See
// docs/console.md.
//
// Sessions: an operator logs in with the admin or the read-only token and
// gets a random session id in a cookie that is HttpOnly, SameSite=Strict
// and Secure under TLS; the page never sees the token again. A request
// authenticated by the cookie that changes anything must also carry the
// session's CSRF token (X-CSRF-Token, learnt from /console/session) and an
// Origin equal to the console's own; bearer-token requests need neither (a
// browser never adds an Authorization header by itself, and the API answers
// no CORS preflight, so a foreign page cannot send one).

//go:embed console
var consoleFiles embed.FS

const (
	sessionCookie = "ringway_session"
	sessionTTL    = 12 * time.Hour // a session ends this long after login
	maxSessions   = 256            // the oldest is forgotten beyond this
	maxStreams    = 32             // event streams served at once
	streamPeriod  = 250 * time.Millisecond
	streamBeat    = time.Second      // a status is sent at least this often, so the page can tell the data's age
	streamLife    = 10 * time.Minute // then the browser reconnects (and is authenticated again)
)

// contentSecurityPolicy allows only the console's own files: no inline
// script or style, no framing (clickjacking), forms and fetches to itself.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

type session struct {
	role    role
	csrf    string
	expires time.Time
}

type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (ss *sessions) create(r role, now time.Time) (string, *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m == nil {
		ss.m = map[string]*session{}
	}
	if len(ss.m) >= maxSessions {
		var oldest string
		for id, s := range ss.m {
			if oldest == "" || s.expires.Before(ss.m[oldest].expires) {
				oldest = id
			}
		}
		delete(ss.m, oldest)
	}
	id := randomHex(32)
	s := &session{role: r, csrf: randomHex(32), expires: now.Add(sessionTTL)}
	ss.m[id] = s
	return id, s
}

func (ss *sessions) get(id string, now time.Time) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[id]
	if s == nil {
		return nil
	}
	if now.After(s.expires) {
		delete(ss.m, id)
		return nil
	}
	return s
}

func (ss *sessions) drop(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, id)
}

// securityHeaders are set on every answer of the management listener.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, "/console/") || r.URL.Path == "/console/session" {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// consoleRoutes adds the console's routes to mux.
func (s *Server) consoleRoutes(mux *http.ServeMux) {
	static, _ := fs.Sub(consoleFiles, "console")
	files := http.FileServerFS(static)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "index.html")
	})
	mux.Handle("GET /console/", http.StripPrefix("/console/", files))
	mux.HandleFunc("POST /console/login", s.login)
	mux.HandleFunc("POST /console/logout", s.logout)
	mux.Handle("GET /console/session", s.auth(roleRead, http.HandlerFunc(s.sessionInfo)))
	mux.Handle("GET /api/v1/events", s.auth(roleRead, http.HandlerFunc(s.events)))
}

// sameOrigin reports whether the request's Origin is the console's own
// origin (scheme and host the browser used to reach this listener).
func sameOrigin(r *http.Request) bool {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	o := r.Header.Get("Origin")
	return o != "" && o == scheme+"://"+r.Host
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "login must come from the console's own page (Origin "+r.Header.Get("Origin")+" refused)")
		return
	}
	addr := addrKey(remoteAddr(r))
	if s.fails.lockedOut(addr) {
		writeError(w, http.StatusTooManyRequests, "too many wrong tokens from this address; wait and try again")
		return
	}
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 8<<10)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, `login needs a JSON body {"token":"..."}`)
		return
	}
	got := s.tokenRole(strings.TrimSpace(body.Token))
	if got == roleNone {
		s.fails.fail(addr, r.RemoteAddr, "wrong token at console login")
		s.slow(r)
		writeError(w, http.StatusUnauthorized, "wrong token: paste the admin token (management.token_file) or the read-only token (management.read_token_file)")
		return
	}
	id, ses := s.sessions.create(got, time.Now())
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
		MaxAge: int(sessionTTL / time.Second),
	})
	if c := connFrom(r.Context()); c != nil {
		c.authed.Store(true)
	}
	s.log.Info("console login", "remote", r.RemoteAddr, "role", got.String())
	writeJSON(w, http.StatusOK, sessionJSON{Role: got.String(), CSRF: ses.csrf, Node: s.backend.Status().Node})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "cross-origin request refused")
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.sessions.drop(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	writeJSON(w, http.StatusOK, map[string]string{"status": "logged out"})
}

type sessionJSON struct {
	Role string `json:"role"` // admin or read-only
	CSRF string `json:"csrf"` // send as X-CSRF-Token with every POST
	Node string `json:"node"`
}

func (s *Server) sessionInfo(w http.ResponseWriter, r *http.Request) {
	ses := s.cookieSession(r)
	if ses == nil {
		writeError(w, http.StatusUnauthorized, "no console session (log in)")
		return
	}
	writeJSON(w, http.StatusOK, sessionJSON{Role: ses.role.String(), CSRF: ses.csrf, Node: s.backend.Status().Node})
}

func (s *Server) cookieSession(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	return s.sessions.get(c.Value, time.Now())
}

// sessionRole is the role of the console session the request's cookie
// names; presented says a session cookie was sent. A request that is not
// a GET or HEAD must also come from the console's own origin and carry the
// session's CSRF token; otherwise ok is false and csrf says why.
func (s *Server) sessionRole(r *http.Request) (got role, presented bool, csrf string) {
	if _, err := r.Cookie(sessionCookie); err != nil {
		return roleNone, false, ""
	}
	ses := s.cookieSession(r)
	if ses == nil {
		return roleNone, false, "" // expired or from before a restart: log in again
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if !sameOrigin(r) {
			return roleNone, true, "cross-origin request refused (Origin " + r.Header.Get("Origin") + ")"
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-CSRF-Token")), []byte(ses.csrf)) != 1 {
			return roleNone, true, "missing or wrong X-CSRF-Token"
		}
	}
	return ses.role, true, ""
}

// events streams the status as Server-Sent Events: one "status" event
// whenever it changes (checked every 250 ms) and at least every second,
// for up to 10 minutes; the browser's EventSource reconnects by itself.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	select {
	case s.streams <- struct{}{}:
		defer func() { <-s.streams }()
	default:
		writeError(w, http.StatusServiceUnavailable, "too many event streams open")
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{}) // the server's ReadTimeout would end the stream
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	end := time.NewTimer(streamLife)
	defer end.Stop()
	tick := time.NewTicker(streamPeriod)
	defer tick.Stop()
	var last []byte
	var sent time.Time
	for {
		st := s.backend.Status()
		b, err := json.Marshal(st)
		if err != nil {
			return
		}
		st.UptimeS, st.Rotation = 0, 0 // these change at every call
		cmpb, _ := json.Marshal(st)
		if !bytes.Equal(cmpb, last) || time.Since(sent) >= streamBeat {
			last, sent = cmpb, time.Now()
			_ = rc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(w, "event: status\ndata: "); err != nil {
				return
			}
			w.Write(b)
			if _, err := io.WriteString(w, "\n\n"); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-end.C:
			return
		case <-tick.C:
		}
	}
}
