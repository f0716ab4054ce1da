package mgmt

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// ReloadResult is what POST /api/v1/reload answers: what became of the
// node's attempt to apply its config file again (docs/operating.md,
// "Reload").
type ReloadResult struct {
	// Outcome is one of:
	//   applied    the cluster runs the file's configuration from Epoch on
	//   unchanged  the cluster already runs it (another node's reload, or nothing changed)
	//   refused    nothing was applied; Errors says why (file:line errors, keys
	//              that need a restart, a reload that raced another)
	//   pending    proposed, but no answer within the wait (the node is not in a ring with quorum?)
	Outcome string   `json:"outcome"`
	Epoch   uint64   `json:"epoch"`             // the cluster's config epoch after the reload
	Hash    string   `json:"hash"`              // the file's hash (its cluster-wide part)
	Changes []string `json:"changes,omitempty"` // the keys that changed
	Errors  []string `json:"errors,omitempty"`  // why it was refused, one problem per line
	// DropFlows are the removed VIPs whose open flows every node drops
	// (asked with drop_flows, applied).
	DropFlows []string `json:"drop_flows,omitempty"`
	// Notes say what the answer alone does not: --drop-flows with
	// nothing to drop, for instance.
	Notes []string `json:"notes,omitempty"`
}

// ReloadOptions are what an operator asks of a reload, besides reading
// the file: POST /api/v1/reload's optional JSON body.
type ReloadOptions struct {
	// DropFlows: the open flows through the VIPs this reload removes are
	// dropped on every node (`ringway reload --drop-flows`); without it
	// they go on until they end.
	DropFlows bool `json:"drop_flows"`
}

// ConfigStatus is a node's configuration as the status reports it.
type ConfigStatus struct {
	// Epoch is the cluster's config epoch this node runs (0: the files
	// the nodes started with), Hash its hash (short hex).
	Epoch uint64 `json:"epoch"`
	Hash  string `json:"hash"`
	// FileHash is the hash of this node's file as it last read it (at
	// start or its last reload). It differs from Hash when the file
	// disagrees with the cluster; Differs then names the keys.
	FileHash string   `json:"file_hash"`
	Differs  []string `json:"differs,omitempty"`
	// Files are the file hashes of every member, by node id, as they
	// report them on the token.
	Files map[string]string `json:"files,omitempty"`
}

// Reloader is a Backend that can reload its config file.
type Reloader interface {
	// Reload re-reads the node's config file and applies it as
	// ReloadResult says; it waits for the ring's answer until ctx ends.
	Reload(ctx context.Context, o ReloadOptions) ReloadResult
}

// reloadWait bounds how long the API waits for the ring to apply a reload.
const reloadWait = 4 * time.Second

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	rl, ok := s.backend.(Reloader)
	if !ok {
		writeJSON(w, http.StatusNotImplemented, apiError{Error: "this node cannot reload its configuration"})
		return
	}
	var o ReloadOptions
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, `reload takes no body or a JSON body {"drop_flows": true|false}: `+err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), reloadWait)
	defer cancel()
	res := rl.Reload(ctx, o)
	s.log.Info("reload requested through the API", "outcome", res.Outcome, "epoch", res.Epoch, "drop_flows", o.DropFlows, "from", r.RemoteAddr)
	writeJSON(w, http.StatusOK, res)
}

// Reload asks the node to re-read its config file and apply it.
func (c *Client) Reload(ctx context.Context, o ReloadOptions) (ReloadResult, error) {
	var res ReloadResult
	var in any
	if o != (ReloadOptions{}) {
		in = o
	}
	err := c.do(ctx, http.MethodPost, "/api/v1/reload", in, &res)
	return res, err
}
