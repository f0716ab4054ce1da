// Package monitor watches what makes a node fit to answer VIPs (DESIGN.md:
// NIC link, application, ping). A failing monitor makes the node unhealthy;
// ringstate carries that on the token and the VIP table gives an unhealthy
// node nothing (vipstate.Input.Closed), so its VIPs move to healthy
// members while it stays in the ring.
//
// Built so far: NIC, the link state of every subnet interface, event-driven
// through netlink link notifications (no polling while nothing changes);
// Ping, ICMP echo to remote hosts or routers each interval; and the
// application monitor, either Command (an operator's check) or Probe, the
// built-in check (the patent's "dummy packets"): every interval each packet
// worker of the router decides synthetic probes through the same decision
// path as real frames, the stateful filter included, on its own goroutine
// (router.Router.Probe); a worker that does not answer in time, or decides
// a probe wrongly, makes the node unhealthy, so a wedged data plane is
// detected, not only a dead process.
package monitor
