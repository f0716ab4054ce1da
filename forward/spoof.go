package forward

import (
	"net/netip"
	"sync/atomic"
)

// spoofer checks a packet's source against what may arrive on each link
// (DESIGN.md: a source of another connected subnet, a VIP, 0/8, 127/8,
// 169.254/16, 224/4, or a subnet's broadcast address is a forgery, or a
// misconfigured host: dropped and counted).
type spoofer struct {
	links   []pfx                               // each link's connected prefix
	bcast   []uint32                            // each link's directed broadcast address
	primary []uint32                            // this node's primary addresses
	ours    atomic.Pointer[map[uint32]struct{}] // VIPs and primary; SetVIPs swaps it whole
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
	if _, ok := (*s.ours.Load())[a]; ok {
		return ReasonSpoofVIP
	}
	return ReasonNone
}

// setVIPs makes vips (with the primary addresses) the sources refused as
// spoofed_vip.
func (s *spoofer) setVIPs(vips []netip.Addr) {
	m := make(map[uint32]struct{}, len(s.primary)+len(vips))
	for _, a := range s.primary {
		m[a] = struct{}{}
	}
	for _, v := range vips {
		if v.Is4() {
			m[u32(v.As4())] = struct{}{}
		}
	}
	s.ours.Store(&m)
}

// SetVIPs replaces the VIPs whose address no packet may arrive from (a
// reload that adds or removes VIPs). Safe for concurrent use with
// decisions: each packet sees the old list or the new one.
func (f *Filter) SetVIPs(vips []netip.Addr) { f.spoof.setVIPs(vips) }
