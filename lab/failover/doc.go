// Package failover measures how long the lab's client loses its path to the
// server when the owner of its gateway VIP is cut off (DESIGN.md "How we
// measure"), for any gateway implementation that fits System: keepalived
// (keepalived.go) and ringway (ringway.go). Results are Rows, printed as a
// table and merged into bench/out/failover.json (shape in docs/lab.md).
package failover
