package mgmt

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/netutil"
)

// Config configures the management server.
type Config struct {
	Listen string // host:port; ":0" picks a free port (see Server.Addr)
	Token  string // the admin bearer token: everything; never empty
	// ReadToken, if set, is a second bearer token that may only read:
	// status, flows, metrics, the console's read-only view.
	ReadToken string
	TLSCert   string // PEM files; both or neither
	TLSKey    string
	Logger    *slog.Logger
	// Metrics, if set, is served at GET /metrics (Prometheus text format),
	// behind the same token as the API.
	Metrics http.Handler
	// MaxConns caps the connections served at once; more wait in the
	// listen backlog. 0 means DefaultMaxConns. An operator's tools need a
	// handful; the cap keeps a flood of clients from taking the node's
	// memory and file descriptors.
	MaxConns int
	// MaxConnsPerAddr caps the connections open at once from one client
	// address (IPv4 address or IPv6 /64); more are closed at once, so
	// one client cannot fill MaxConns. 0 means DefaultMaxConnsPerAddr.
	MaxConnsPerAddr int
	// UnauthIdle is how long a connection that has not yet presented a
	// valid token may sit idle before it is closed. 0 means
	// DefaultUnauthIdle.
	UnauthIdle time.Duration
}

// Defaults of Config.
const (
	DefaultMaxConns        = 64
	DefaultMaxConnsPerAddr = 16 // a browser opens 6 per host, plus the console's event stream
	DefaultUnauthIdle      = 2 * time.Second
)

func (c Config) validate() error {
	if c.Listen == "" {
		return errors.New("mgmt: no listen address")
	}
	if len(c.Token) < 16 {
		return errors.New("mgmt: the admin token must be at least 16 characters (`ringway key generate` writes a good one)")
	}
	if c.ReadToken != "" && len(c.ReadToken) < 16 {
		return errors.New("mgmt: the read-only token must be at least 16 characters (`ringway key generate` writes a good one)")
	}
	if c.ReadToken != "" && c.ReadToken == c.Token {
		return errors.New("mgmt: the read-only token is the admin token; write a different one to management.read_token_file")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("mgmt: set both tls_cert and tls_key, or neither")
	}
	if c.MaxConns < 0 || c.MaxConnsPerAddr < 0 || c.UnauthIdle < 0 {
		return fmt.Errorf("mgmt: MaxConns %d, MaxConnsPerAddr %d, UnauthIdle %v: use 0 for the defaults or positive values", c.MaxConns, c.MaxConnsPerAddr, c.UnauthIdle)
	}
	return nil
}

// Server serves the management API for one Backend.
type Server struct {
	cfg      Config
	backend  Backend
	log      *slog.Logger
	ln       net.Listener
	srv      *http.Server
	fails    *failures
	sessions sessions
	streams  chan struct{} // a slot per open event stream
	refused  atomic.Uint64 // session requests refused for their Origin or CSRF token
}

// NewServer checks cfg, loads the TLS key pair and binds the listener, so a
// bad address or certificate fails at start-up rather than later; it serves
// nothing until Run. Close releases the listener if Run never runs.
func NewServer(cfg Config, b Backend) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var tlsConfig *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("mgmt: TLS key pair %s, %s: %w (check management.tls_cert and management.tls_key: PEM files of a matching certificate and key, readable by ringway)", cfg.TLSCert, cfg.TLSKey, err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("mgmt: listen on %s: %w (check management.listen)", cfg.Listen, err)
	}
	log := cfg.Logger
	if log == nil {
		log = nopLogger()
	}
	cfg.setDefaults()
	// The per-address cap is outermost: a connection over it is closed
	// at once and gives its MaxConns slot straight back.
	ln = newAddrListener(netutil.LimitListener(ln, cfg.MaxConns), cfg.MaxConnsPerAddr, log)
	s := &Server{cfg: cfg, backend: b, log: log, ln: ln}
	s.srv = &http.Server{
		Handler:   s.Handler(),
		ConnState: s.connState,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, unwrapConn(c))
		},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second, // idle keep-alives give their slot back
		MaxHeaderBytes:    16 << 10,
		TLSConfig:         tlsConfig,
	}
	return s, nil
}

func (c *Config) setDefaults() {
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxConnsPerAddr == 0 {
		c.MaxConnsPerAddr = DefaultMaxConnsPerAddr
	}
	if c.UnauthIdle == 0 {
		c.UnauthIdle = DefaultUnauthIdle
	}
}

// unwrapConn returns the guardConn under c (TLS wraps it), or nil.
func unwrapConn(c net.Conn) *guardConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	g, _ := c.(*guardConn)
	return g
}

// connState closes a connection that sits idle for UnauthIdle (new, or
// between requests) before any request on it presented a valid token.
func (s *Server) connState(c net.Conn, st http.ConnState) {
	g := unwrapConn(c)
	if g == nil {
		return
	}
	switch st {
	case http.StateNew, http.StateIdle:
		g.idle.Store(true)
		if g.authed.Load() {
			return
		}
		if g.timer == nil {
			g.timer = time.AfterFunc(s.cfg.UnauthIdle, func() {
				if g.idle.Load() && !g.authed.Load() {
					g.Close()
				}
			})
		} else {
			g.timer.Reset(s.cfg.UnauthIdle)
		}
	case http.StateActive:
		g.idle.Store(false)
	case http.StateClosed, http.StateHijacked:
		if g.timer != nil {
			g.timer.Stop()
		}
	}
}

// Close stops serving at once (open connections are closed) and releases
// the listener, also when Run never ran. Run then returns nil.
func (s *Server) Close() error {
	err := s.srv.Close()
	if cerr := s.ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
		err = cerr
	}
	return err
}

// AuthFailures returns the wrong tokens presented since start and the
// requests refused unchecked because their address was locked out.
func (s *Server) AuthFailures() (failed, locked uint64) {
	if s.fails == nil {
		return 0, 0
	}
	return s.fails.counts()
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx is done, then shuts down gracefully. It returns nil
// after a shutdown caused by ctx or by Close.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		if s.srv.TLSConfig != nil {
			errc <- s.srv.ServeTLS(s.ln, "", "") // the key pair is in TLSConfig
		} else {
			errc <- s.srv.Serve(s.ln)
		}
	}()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil // Close
		}
		return fmt.Errorf("mgmt: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(sctx)
	<-errc
	return nil
}

// Handler returns the API's routes (tests use it without a listener).
func (s *Server) Handler() http.Handler {
	if s.fails == nil {
		s.fails = newFailures(s.log, time.Now)
		s.streams = make(chan struct{}, maxStreams)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /api/v1/status", s.auth(roleRead, http.HandlerFunc(s.status)))
	mux.Handle("GET /api/v1/flows", s.auth(roleRead, http.HandlerFunc(s.flows)))
	mux.Handle("POST /api/v1/vips/{vip}/{op}", s.auth(roleAdmin, http.HandlerFunc(s.vip)))
	mux.Handle("POST /api/v1/nodes/{node}/{op}", s.auth(roleAdmin, http.HandlerFunc(s.node)))
	mux.Handle("POST /api/v1/switches/{switch}/{state}", s.auth(roleAdmin, http.HandlerFunc(s.switchOp)))
	mux.Handle("POST /api/v1/reload", s.auth(roleAdmin, http.HandlerFunc(s.reload)))
	if s.cfg.Metrics != nil {
		mux.Handle("GET /metrics", s.auth(roleRead, s.cfg.Metrics))
	}
	s.consoleRoutes(mux)
	return securityHeaders(mux)
}

// role is what a request may do.
type role int

const (
	roleNone  role = iota
	roleRead       // status, flows, metrics, the console's read-only view
	roleAdmin      // everything
)

func (r role) String() string {
	return [...]string{"none", "read-only", "admin"}[r]
}

// bearer returns the role of the request's bearer token, and whether it
// presented one at all.
func (s *Server) bearer(r *http.Request) (role, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return roleNone, false
	}
	return s.tokenRole(strings.TrimPrefix(h, "Bearer ")), true
}

// tokenRole compares tok with both tokens in constant time.
func (s *Server) tokenRole(tok string) role {
	admin := subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.Token))
	read := 0
	if s.cfg.ReadToken != "" {
		read = subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.ReadToken))
	}
	switch {
	case admin == 1:
		return roleAdmin
	case read == 1:
		return roleRead
	}
	return roleNone
}

// auth lets a request through when its bearer token grants at least min.
// An address that sent too many wrong tokens is refused (429) without its
// token being looked at; each wrong token is counted, logged (rate
// limited) and answered after failDelay.
func (s *Server) auth(min role, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := s.identify(w, r)
		if !ok {
			return
		}
		if got < min {
			writeError(w, http.StatusForbidden, "this needs the admin token (management.token_file); the token given may only read")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// identify answers 429 or 401 itself and returns false, or returns the
// request's role.
func (s *Server) identify(w http.ResponseWriter, r *http.Request) (role, bool) {
	addr := addrKey(remoteAddr(r))
	if s.fails.lockedOut(addr) {
		w.Header().Set("Retry-After", fmt.Sprint(int(failRefill/time.Second)))
		writeError(w, http.StatusTooManyRequests, "too many wrong tokens from this address; wait and try again with the right one")
		return roleNone, false
	}
	got, presented := s.bearer(r)
	if !presented {
		var csrf string
		if got, presented, csrf = s.sessionRole(r); csrf != "" {
			if n := s.refused.Add(1); n&(n-1) == 0 { // the 1st, 2nd, 4th ... refusal
				s.log.Warn("refused console request", "why", csrf, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "refused_total", n)
			}
			writeError(w, http.StatusForbidden, csrf)
			return roleNone, false
		}
	}
	if got == roleNone {
		if presented {
			s.fails.fail(addr, r.RemoteAddr, "wrong token")
			s.slow(r)
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="ringway"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong token (see management.token_file and management.read_token_file)")
		return roleNone, false
	}
	if c := connFrom(r.Context()); c != nil {
		c.authed.Store(true)
	}
	return got, true
}

// slow holds the answer to a wrong token for failDelay.
func (s *Server) slow(r *http.Request) {
	t := time.NewTimer(failDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

type remoteAddrString string

func (a remoteAddrString) Network() string { return "tcp" }
func (a remoteAddrString) String() string  { return string(a) }

func remoteAddr(r *http.Request) net.Addr { return remoteAddrString(r.RemoteAddr) }

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.backend.Status())
}

func (s *Server) vip(w http.ResponseWriter, r *http.Request) {
	vip, err := netip.ParseAddr(r.PathValue("vip"))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad VIP %q: %v", r.PathValue("vip"), err))
		return
	}
	op := VIPOp{Op: r.PathValue("op"), VIP: vip}
	if op.Op == "move" {
		var body struct {
			Node string `json:"node"`
		}
		dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, `move needs a JSON body {"node":"<node id>"}: `+err.Error())
			return
		}
		op.Node = strings.TrimSpace(body.Node)
	}
	s.queue(w, r, op.Validate, func() (uint64, error) {
		if q, ok := s.backend.(OpQueuer); ok {
			return q.QueueVIP(op)
		}
		return 0, s.backend.VIP(op)
	},
		"vip operation queued", "op", op.Op, "vip", op.VIP, "node", op.Node)
}

func (s *Server) node(w http.ResponseWriter, r *http.Request) {
	op := NodeOp{Op: r.PathValue("op"), Node: r.PathValue("node")}
	s.queue(w, r, op.Validate, func() (uint64, error) {
		if q, ok := s.backend.(OpQueuer); ok {
			return q.QueueNode(op)
		}
		return 0, s.backend.Node(op)
	},
		"node operation queued", "op", op.Op, "node", op.Node)
}

// queue answers an operator's operation: 400 when validate refuses it,
// else what enqueue says: 404 for an unknown VIP or node (ErrNotFound),
// 409 for any other refusal, 202 once queued (logged as msg with attrs),
// with the operation's id when the backend names it (OpQueuer).
func (s *Server) queue(w http.ResponseWriter, r *http.Request, validate func() error, enqueue func() (uint64, error), msg string, attrs ...any) {
	if err := validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id, err := enqueue()
	if err != nil {
		code := http.StatusConflict
		if errors.Is(err, ErrNotFound) {
			code = http.StatusNotFound
		}
		writeError(w, code, err.Error())
		return
	}
	s.log.Info(msg, append(attrs, "remote", r.RemoteAddr)...)
	writeJSON(w, http.StatusAccepted, queued{Status: "queued", ID: id})
}

// queued is the answer to an accepted operation.
type queued struct {
	Status string `json:"status"`
	ID     uint64 `json:"id,omitempty"` // follow it in Status.Ops
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // messages read "?a=1&b=2", not "\u0026"; nothing here is HTML
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

func nopLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
