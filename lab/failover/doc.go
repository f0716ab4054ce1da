// Package failover measures how long the lab's client loses its path to the
// server when the owner of its gateway VIP is cut off (DESIGN.md "How we
// measure"), for any gateway implementation that fits System: keepalived
// here, ringway in the node package's bench. Results are Rows, printed as a
// table and merged into bench/out/failover.json (shape in docs/lab.md).
package failover
