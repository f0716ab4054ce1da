package forward

// spoofer checks a packet's source against what may arrive on each link
// (DESIGN.md: a source of another connected subnet, a VIP, 0/8, 127/8,
// 169.254/16, 224/4, or a subnet's broadcast address is a forgery, or a
// misconfigured host: dropped and counted).
type spoofer struct {
	links []pfx               // each link's connected prefix
	bcast []uint32            // each link's directed broadcast address
	ours  map[uint32]struct{} // VIPs and this node's primary addresses
}

func (s *spoofer) check(src [4]byte, in int) Reason {
	a := u32(src)
	switch b := src[0]; {
	case b == 0, b == 127, b >= 224, a>>16 == 169<<8|254:
		return ReasonSpoofMartian
	}
	for i, l := range s.links {
		if a == s.bcast[i] {
			return ReasonSpoofBroadcast
		}
		if i != in && l.contains(a) {
			return ReasonSpoofSubnet
		}
	}
	if _, ok := s.ours[a]; ok {
		return ReasonSpoofVIP
	}
	return ReasonNone
}
