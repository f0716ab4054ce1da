package router

// Filter is the stateful filter the router consults per packet (package
// forward implements it). Both methods get the IPv4 packet from its header
// on, before the router rewrites it, and the time in ns on the router's
// clock. They must not keep ip, must not block, and must not allocate on
// the packet path; they are called from every worker at once.
type Filter interface {
	// Pass reports whether ip, arriving on link in, may be forwarded out
	// of link out.
	Pass(ip []byte, in, out int, now int64) bool
	// PassLocal reports whether ip, arriving on link in and addressed to
	// a VIP this node answers, may reach the node's own OS through TUN.
	// (ICMP echo to a VIP is answered by the router and never asked.)
	PassLocal(ip []byte, in int, now int64) bool
}
