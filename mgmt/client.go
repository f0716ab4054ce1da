package mgmt

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to one node's management API.
type Client struct {
	// Base is the API's root, e.g. "http://127.0.0.1:9440".
	Base  string
	Token string
	// HTTP is the client used; nil means a client with a 5 s timeout.
	HTTP *http.Client
}

// NewClient returns a client for addr ("host:port" or a URL). TLS
// verification is skipped only when insecure is true (self-signed lab certs).
func NewClient(addr, token string, insecure bool) *Client {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	if insecure {
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	}
	return &Client{Base: strings.TrimRight(base, "/"), Token: token, HTTP: hc}
}

// Status fetches the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/api/v1/status", nil, &st)
	return st, err
}

// Flows fetches the node's flows that match q, oldest first. A node whose
// filter is off answers Enabled false, not an error.
func (c *Client) Flows(ctx context.Context, q FlowQuery) (Flows, error) {
	var fl Flows
	if err := q.Validate(); err != nil {
		return fl, err
	}
	path := "/api/v1/flows"
	if v := q.values(); len(v) > 0 {
		path += "?" + v.Encode()
	}
	err := c.do(ctx, http.MethodGet, path, nil, &fl)
	return fl, err
}

// VIP sends op; nil means the node queued it.
func (c *Client) VIP(ctx context.Context, op VIPOp) error {
	if err := op.Validate(); err != nil {
		return err
	}
	var body any
	if op.Op == "move" {
		body = map[string]string{"node": op.Node}
	}
	return c.do(ctx, http.MethodPost, "/api/v1/vips/"+op.VIP.String()+"/"+op.Op, body, nil)
}

// Node sends op; nil means the node queued it.
func (c *Client) Node(ctx context.Context, op NodeOp) error {
	if err := op.Validate(); err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, "/api/v1/nodes/"+url.PathEscape(op.Node)+"/"+op.Op, nil, nil)
}

// Metrics returns the node's Prometheus metrics (text exposition format).
func (c *Client) Metrics(ctx context.Context) (string, error) {
	var b []byte
	err := c.do(ctx, http.MethodGet, "/metrics", nil, &b)
	return string(b), err
}

// do sends a request; out receives the JSON reply, or the raw body when it
// is a *[]byte.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var rd io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("management API at %s: %w (is the node running, and is management.listen right?)", c.Base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("management API at %s: %w", c.Base, err)
	}
	if resp.StatusCode/100 != 2 {
		var e apiError
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("management API at %s: bad reply: %w", c.Base, err)
		}
	}
	return nil
}
