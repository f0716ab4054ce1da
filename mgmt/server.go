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
	"time"

	"golang.org/x/net/netutil"
)

// Config configures the management server.
type Config struct {
	Listen  string // host:port; ":0" picks a free port (see Server.Addr)
	Token   string // bearer token every API request must present; never empty
	TLSCert string // PEM files; both or neither
	TLSKey  string
	Logger  *slog.Logger
	// Metrics, if set, is served at GET /metrics (Prometheus text format),
	// behind the same token as the API.
	Metrics http.Handler
	// MaxConns caps the connections served at once; more wait in the
	// listen backlog. 0 means DefaultMaxConns. An operator's tools need a
	// handful; the cap keeps a flood of clients from taking the node's
	// memory and file descriptors.
	MaxConns int
}

// DefaultMaxConns is the default Config.MaxConns.
const DefaultMaxConns = 64

func (c Config) validate() error {
	if c.Listen == "" {
		return errors.New("mgmt: no listen address")
	}
	if len(c.Token) < 16 {
		return errors.New("mgmt: the admin token must be at least 16 characters (`ringway key generate` writes a good one)")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("mgmt: set both tls_cert and tls_key, or neither")
	}
	if c.MaxConns < 0 {
		return fmt.Errorf("mgmt: MaxConns is %d; use 0 for the default (%d) or a positive number", c.MaxConns, DefaultMaxConns)
	}
	return nil
}

// Server serves the management API for one Backend.
type Server struct {
	cfg     Config
	backend Backend
	log     *slog.Logger
	ln      net.Listener
	srv     *http.Server
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
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	ln = netutil.LimitListener(ln, cfg.MaxConns)
	s := &Server{cfg: cfg, backend: b, log: log, ln: ln}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second, // idle keep-alives give their slot back
		MaxHeaderBytes:    16 << 10,
		TLSConfig:         tlsConfig,
	}
	return s, nil
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
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /api/v1/status", s.auth(http.HandlerFunc(s.status)))
	mux.Handle("GET /api/v1/flows", s.auth(http.HandlerFunc(s.flows)))
	mux.Handle("POST /api/v1/vips/{vip}/{op}", s.auth(http.HandlerFunc(s.vip)))
	mux.Handle("POST /api/v1/nodes/{node}/{op}", s.auth(http.HandlerFunc(s.node)))
	mux.Handle("POST /api/v1/reload", s.auth(http.HandlerFunc(s.reload)))
	if s.cfg.Metrics != nil {
		mux.Handle("GET /metrics", s.auth(s.cfg.Metrics))
	}
	return mux
}

func (s *Server) auth(next http.Handler) http.Handler {
	want := []byte("Bearer " + s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ringway"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong admin token (see management.token_file)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

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
	s.queue(w, r, op.Validate, func() error { return s.backend.VIP(op) },
		"vip operation queued", "op", op.Op, "vip", op.VIP, "node", op.Node)
}

func (s *Server) node(w http.ResponseWriter, r *http.Request) {
	op := NodeOp{Op: r.PathValue("op"), Node: r.PathValue("node")}
	s.queue(w, r, op.Validate, func() error { return s.backend.Node(op) },
		"node operation queued", "op", op.Op, "node", op.Node)
}

// queue answers an operator's operation: 400 when validate refuses it,
// else what enqueue says: 404 for an unknown VIP or node (ErrNotFound),
// 409 for any other refusal, 202 once queued (logged as msg with attrs).
func (s *Server) queue(w http.ResponseWriter, r *http.Request, validate, enqueue func() error, msg string, attrs ...any) {
	if err := validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := enqueue(); err != nil {
		code := http.StatusConflict
		if errors.Is(err, ErrNotFound) {
			code = http.StatusNotFound
		}
		writeError(w, code, err.Error())
		return
	}
	s.log.Info(msg, append(attrs, "remote", r.RemoteAddr)...)
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "queued"})
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
