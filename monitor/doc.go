// Package monitor watches what makes a node fit to answer VIPs (DESIGN.md:
// NIC link, application, ping). A failing monitor makes the node unhealthy;
// ringstate carries that on the token and the VIP table gives an unhealthy
// node nothing (vipstate.Input.Closed), so its VIPs move to healthy
// members while it stays in the ring.
//
// Built so far: NIC, the link state of every subnet interface, event-driven
// through netlink link notifications (no polling while nothing changes);
// Ping, ICMP echo to remote hosts or routers each interval; and Command,
// the application monitor with an operator's check. The built-in
// application check (dummy packets through the stateful filter) is not
// built.
package monitor
