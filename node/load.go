package node

import (
	"context"
	"net/netip"
	"time"
)

// loadInterval is how often per-VIP byte rates are sampled from the router.
const loadInterval = time.Second

// measureLoad turns the router's per-VIP byte counters into rates (bytes/s)
// that the holder puts on the token for load balancing.
func (n *Node) measureLoad(ctx context.Context) error {
	t := time.NewTicker(loadInterval)
	defer t.Stop()
	prev := map[netip.Addr]uint64{}
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			dt := now.Sub(last).Seconds()
			last = now
			rates := map[netip.Addr]uint64{}
			for _, v := range n.plane.Stats().VIPs {
				if old, ok := prev[v.VIP]; ok && v.Owned && v.Bytes >= old && dt > 0 {
					rates[v.VIP] = uint64(float64(v.Bytes-old) / dt)
				}
				prev[v.VIP] = v.Bytes
			}
			n.load.Store(&rates)
		}
	}
}

// localLoad is ringstate's LocalLoad: the latest rates, never blocking.
func (n *Node) localLoad() map[netip.Addr]uint64 {
	if m := n.load.Load(); m != nil {
		return *m
	}
	return nil
}
