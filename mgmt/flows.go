package mgmt

import (
	"cmp"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
)

// Flow is one flow of the stateful filter's connection table as operators
// see it (GET /api/v1/flows, `ringway flows`).
type Flow struct {
	Proto string `json:"proto"` // tcp, udp or icmp (echo)
	// Src is the flow's initiator, Dst its responder. ICMP echo flows have
	// zero ports; ICMPID tells them apart.
	Src    netip.AddrPort `json:"src"`
	Dst    netip.AddrPort `json:"dst"`
	ICMPID uint16         `json:"icmp_id,omitempty"` // ICMP echo: the identifier
	// State is a forward.State name: syn_sent, syn_recv, established,
	// fin_wait, close_wait, last_ack, time_wait, close (TCP); unreplied,
	// assured (UDP); icmp (echo).
	State string `json:"state"`
	// Rule is the name of the filter rule that accepted the flow's first
	// packet, "default" when no rule matched and filter.default accepted it.
	Rule     string  `json:"rule"`
	AgeS     float64 `json:"age_s"`     // since the first packet
	IdleS    float64 `json:"idle_s"`    // since the last packet
	ExpiresS float64 `json:"expires_s"` // until it expires if nothing more is seen
	// Packets and bytes (IP headers included) each way: orig from the
	// initiator, reply from the responder.
	PacketsOrig  uint64 `json:"packets_orig"`
	PacketsReply uint64 `json:"packets_reply"`
	BytesOrig    uint64 `json:"bytes_orig"`
	BytesReply   uint64 `json:"bytes_reply"`
	// Handler is the node that keeps the flow's state (the node
	// answering: a node lists the flows it handles) and Authoritative
	// the flow's authoritative node in its directory, which knows the
	// handler; both empty without symmetric routing (one node, or the
	// filter off).
	Handler       string `json:"handler,omitempty"`
	Authoritative string `json:"authoritative,omitempty"`
}

// Flows is what GET /api/v1/flows returns: some of one node's tracked flows.
// A node whose filter is off answers Enabled false and no flows (200, not an
// error: the node is fine, it just tracks nothing).
type Flows struct {
	Node    string `json:"node"`    // the node answering
	Enabled bool   `json:"enabled"` // filter.enabled in its config
	Count   int64  `json:"count"`   // flows in its table now, matching the query or not
	Max     int64  `json:"max"`     // the table's cap (filter.max_flows)
	// Flows are the flows that match the query, oldest first, at most the
	// query's limit.
	Flows []Flow `json:"flows"`
	// Truncated says more flows matched than the limit let through.
	Truncated bool `json:"truncated"`
}

// Bounds of FlowQuery.Limit. The cap keeps one answer a few MB of JSON
// (about 400 bytes a flow), well inside what Client reads (8 MiB) and
// what the server writes within its 10 s write timeout.
const (
	DefaultFlowLimit = 1000
	MaxFlowLimit     = 10000
)

// FlowQuery selects flows: GET /api/v1/flows?addr=A&limit=N.
type FlowQuery struct {
	// Addr, when valid, selects the flows with this IPv4 address at either
	// end (initiator or responder); the zero Addr selects every flow.
	Addr netip.Addr
	// Limit is the most flows to return, 1 to MaxFlowLimit; 0 means
	// DefaultFlowLimit. A FlowBackend always sees it filled in.
	Limit int
}

// Validate says what is wrong with q, if anything.
func (q FlowQuery) Validate() error {
	if q.Addr.IsValid() && !q.Addr.Is4() {
		return fmt.Errorf("addr %s is not an IPv4 address; the filter tracks IPv4 only (write e.g. addr=192.0.2.7)", q.Addr)
	}
	if q.Limit < 0 || q.Limit > MaxFlowLimit {
		return fmt.Errorf("limit %d is out of range; write a whole number from 1 to %d (default %d)", q.Limit, MaxFlowLimit, DefaultFlowLimit)
	}
	return nil
}

// values encodes q as a URL query.
func (q FlowQuery) values() url.Values {
	v := url.Values{}
	if q.Addr.IsValid() {
		v.Set("addr", q.Addr.String())
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// parseFlowQuery reads a FlowQuery from a request's URL query, with the
// limit filled in. Unknown parameters are refused: a misspelt ?adr= must
// not silently list every flow.
func parseFlowQuery(v url.Values) (FlowQuery, error) {
	q := FlowQuery{Limit: DefaultFlowLimit}
	for k := range v {
		if k != "addr" && k != "limit" {
			return q, fmt.Errorf("unknown query parameter %q; the known ones are addr and limit (e.g. ?addr=192.0.2.7&limit=100)", k)
		}
	}
	if s := v.Get("addr"); s != "" {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return q, fmt.Errorf("bad addr %q: write an IPv4 address, e.g. addr=192.0.2.7", s)
		}
		q.Addr = a
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxFlowLimit {
			return q, fmt.Errorf("bad limit %q: write a whole number from 1 to %d (default %d)", s, MaxFlowLimit, DefaultFlowLimit)
		}
		q.Limit = n
	}
	return q, q.Validate()
}

// FlowBackend is a Backend that can list its flows. It is separate from
// Backend so that backends without a filter keep compiling; the API
// answers 501 Not Implemented for them.
type FlowBackend interface {
	// Flows returns the flows matching q (q.Limit is between 1 and
	// MaxFlowLimit), at most q.Limit of them, in any order, with Truncated
	// set when more matched. With the filter off it returns Enabled false
	// and no flows, not an error. It must be safe to call from any
	// goroutine and must not stall the packet path for long.
	Flows(q FlowQuery) (Flows, error)
}

func (s *Server) flows(w http.ResponseWriter, r *http.Request) {
	fb, ok := s.backend.(FlowBackend)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this node cannot list flows (its backend has no flow table)")
		return
	}
	q, err := parseFlowQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	fl, err := fb.Flows(q)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "flows: "+err.Error())
		return
	}
	sortFlows(fl.Flows)
	if len(fl.Flows) > q.Limit {
		// A backend that returns too many is trimmed here, so no answer
		// outgrows what clients read.
		fl.Flows, fl.Truncated = fl.Flows[:q.Limit], true
	}
	if fl.Flows == nil {
		fl.Flows = []Flow{} // "flows": [] rather than null for JSON readers
	}
	writeJSON(w, http.StatusOK, fl)
}

// sortFlows orders flows oldest first (the long-lived flows an operator
// usually looks for), then by endpoints so the order is stable.
func sortFlows(fs []Flow) {
	slices.SortStableFunc(fs, func(a, b Flow) int {
		return cmp.Or(
			cmp.Compare(b.AgeS, a.AgeS),
			a.Src.Compare(b.Src),
			a.Dst.Compare(b.Dst),
			cmp.Compare(a.Proto, b.Proto),
			cmp.Compare(a.ICMPID, b.ICMPID),
		)
	})
}
