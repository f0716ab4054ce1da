package mgmt

// ReplicationStatus is state replication and fail-over on one node
// (docs/forward.md "State replication and fail-over").
type ReplicationStatus struct {
	Queued    int       `json:"queued"`     // changes waiting to be sent now
	QueueMax  int       `json:"queue_max"`  // their cap
	InFlight  int       `json:"in_flight"`  // batches sent and not yet acknowledged now
	Records   uint64    `json:"records"`    // flow records sent
	Batches   [2]uint64 `json:"batches"`    // [sent, received]
	Resends   uint64    `json:"resends"`    // batches sent again for want of an ack
	Collapsed uint64    `json:"collapsed"`  // changes merged into one still waiting
	Overflow  uint64    `json:"overflow"`   // changes refused at the queue's cap (alarm)
	Dropped   uint64    `json:"dropped"`    // batches and records given up with a peer that left
	Malformed uint64    `json:"malformed"`  // sync datagrams received that did not decode
	Bytes     [2]uint64 `json:"bytes"`      // replication datagrams' bytes on the wire [sent, received]
	Replicas  int       `json:"replicas"`   // flows whose state this node holds for their handler
	Refused   uint64    `json:"refused"`    // replicas refused at their cap (alarm)
	Adoptions uint64    `json:"adoptions"`  // flows this node took over from a handler that left
	GivenBack uint64    `json:"given_back"` // adopted flows given back to a handler that was only dropped for a moment
	Resyncs   uint64    `json:"resyncs"`    // flows re-registered and replicated by the walk (after a directory change, or idle)
	// Resync is "done", or "running" while the walk after the last
	// directory change has not yet re-sent every flow handled here to
	// the flows' new authoritative nodes and standbys; ResyncTime is
	// how long it took (or has taken so far), in seconds.
	Resync string `json:"resync"`
	// Bulk counts the fill's copies (docs/forward.md "The fill"):
	// [records this node queued for other nodes' fills, replicas and
	// flows it handles; replicas received here as bulk copies and stored].
	Bulk       [2]uint64 `json:"bulk"`
	ResyncTime float64   `json:"resync_s"`
	// LagUs counts acknowledged batches by the time from their oldest
	// change to their ack: entry i below LagBoundsUs[i] µs (and not
	// below the bound before it), the last entry everything longer.
	LagUs       []uint64 `json:"lag_us,omitempty"`
	LagBoundsUs []uint32 `json:"lag_bounds_us,omitempty"`
	// Fill is the fill: this node's and every member's.
	Fill *FillStatus `json:"fill,omitempty"`
}

// FillStatus is the fill (docs/forward.md "The fill"): this node's own,
// and every member's as the committed state says, with the rows each is
// authoritative for in this node's flow directory.
type FillStatus struct {
	// State is this node's: "filling" (it is authoritative for no row
	// while a filled member exists) or "filled".
	State    string  `json:"state"`
	Waiting  int     `json:"waiting,omitempty"`   // members whose copy has not come yet (filling)
	Started  string  `json:"started,omitempty"`   // when the running or last fill started (RFC 3339)
	FilledAt string  `json:"filled_at,omitempty"` // when the last fill ended (RFC 3339)
	Took     float64 `json:"took_s"`              // how long the last fill took (s)
	TimedOut bool    `json:"timed_out"`           // the last fill ended at the timeout, members unanswered
	Fills    uint64  `json:"fills"`               // fills ended
	Timeouts uint64  `json:"timeouts"`            // fills ended at the timeout (alarm)
	Serving  int     `json:"serving"`             // other nodes' fills this node is copying to now
	Served   uint64  `json:"served"`              // other nodes' fills it answered
	// Nodes are the members by name: filled or not on the committed
	// token (carriage kind 7), and their rows.
	Nodes map[string]FillNode `json:"nodes,omitempty"`
}

// FillNode is one member's fill as the committed state says.
type FillNode struct {
	Filled   bool `json:"filled"`
	AuthRows int  `json:"auth_rows"` // rows of the flow directory it is authoritative for (of 65,536)
	// AuthSince is when this node installed the directory that made the
	// member authoritative for rows, since it last had none (RFC 3339).
	AuthSince string `json:"auth_since,omitempty"`
}

// LagQuantile returns the upper bound, µs, of the lag bucket that holds
// the q-quantile; over when it is the last bucket (longer than the last
// bound, which it returns); 0 when there is no lag yet (BoundedQuantile).
func (r *ReplicationStatus) LagQuantile(q float64) (us int, over bool) {
	return BoundedQuantile(r.LagUs, r.LagBoundsUs, q)
}
