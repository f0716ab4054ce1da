package router

// tunnelMTU returns the largest IPv4 packet the tunnel carries without
// fragmenting its datagram: the smallest link MTU less the overhead; 0
// without a tunnel overhead configured.
func (r *Router) tunnelMTU() int {
	o := r.cfg.TunnelOverhead
	if o <= 0 {
		return 0
	}
	m := 0
	for i := range r.plane.links {
		if v := r.plane.links[i].mtu.get(); m == 0 || v < m {
			m = v
		}
	}
	return max(m-o, ipv4MinMTU)
}
