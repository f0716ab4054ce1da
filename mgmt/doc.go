// Package mgmt is ringway's management API: HTTP+JSON on management.listen,
// guarded by a bearer token, optionally over TLS.
//
// The server knows the node only through Backend, so the API can be served by
// the daemon and by a fake in tests. Every API request but GET /healthz
// needs "Authorization: Bearer <token>" or a console session cookie; tokens
// are compared in constant time.
//
//	GET  /healthz                    liveness, no token
//	GET  /api/v1/status              Status: membership, token, VIP table,
//	                                 the filter's counts
//	GET  /api/v1/flows?addr=&limit=  Flows: the filter's connection table
//	                                 (501 when the Backend is no FlowBackend)
//	POST /api/v1/vips/{vip}/{op}     op = move (body {"node":"n2"}), prefer,
//	                                 unprefer, stick, unstick, close, open
//	POST /api/v1/nodes/{node}/{op}   op = close, open
//	POST /api/v1/switches/{s}/{v}    s = balance, auto; v = on, off
//	GET  /api/v1/events              the status as Server-Sent Events
//	GET  /metrics                    Prometheus
//	GET  /                           the web console (console.go)
//
// The admin token (management.token_file) may do everything; the read-only
// token (management.read_token_file) only the GETs. guard.go protects the
// listener from strangers.
//
// A VIP operation is accepted by the node that serves the request and applied
// by the ring the next time that node holds the token (only the holder changes
// the table), so the reply means "queued"; poll GET /api/v1/status (or
// `ringway status`) until the table shows the change.
package mgmt
