package node

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ringstate"
)

// proposer is what the node drives in the ring core besides the token:
// operator operations and what it says of itself (*ringnet.Driver).
type proposer interface {
	Propose(ctx context.Context, kind uint16, data []byte) (uint64, error)
	SetLocal(ctx context.Context, l ring.Local) error
}

// loadInterval is how often per-VIP byte rates are sampled from the router.
const loadInterval = time.Second

// reportLocal keeps what the ring core says of this node (ring.Local) up
// to date: its health, the moment a monitor's verdict changes, and its
// per-VIP byte rates (bytes/s, from the router's counters) every
// loadInterval. The Holder writes both on the token at this node's turns.
func (n *Node) reportLocal(ctx context.Context) error {
	t := time.NewTicker(loadInterval)
	defer t.Stop()
	prev := map[netip.Addr]uint64{}
	var prevLinks map[string][2]uint64
	last := time.Now()
	var load []byte
	var sent *ring.Local
	for {
		// The monitors a reload may have replaced, and their verdicts.
		mons := n.mons.Load()
		var nicC, pingC, appC <-chan struct{}
		if mons.nic != nil {
			nicC = mons.nic.Changed()
		}
		if mons.ping != nil {
			pingC = mons.ping.Changed()
		}
		if mons.app != nil {
			appC = mons.app.Changed()
		}
		l := ring.Local{Unhealthy: !mons.healthy(), Load: load}
		if sent == nil || sent.Unhealthy != l.Unhealthy || !bytes.Equal(sent.Load, l.Load) {
			switch err := n.proposer.SetLocal(ctx, l); {
			case err == nil:
				sent = &l
			case ctx.Err() != nil || errors.Is(err, context.Canceled):
				return nil
			default:
				// The ring driver has stopped: Run is stopping.
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-nicC:
		case <-pingC:
		case <-appC:
		case <-mons.swapped:
		case now := <-t.C:
			n.reportFile(ctx)
			dt := now.Sub(last).Seconds()
			last = now
			rates := ringstate.Load{}
			stats := n.plane.Stats()
			links, order := map[string][2]uint64{}, []string{}
			for _, l := range stats.Links {
				links[l.Name] = [2]uint64{l.RxBytes, l.TxBytes}
				order = append(order, l.Name)
			}
			ll := linkRates(prevLinks, links, order, time.Duration(dt*float64(time.Second)))
			n.linkLoad.Store(&ll)
			prevLinks = links
			for _, v := range stats.VIPs {
				if old, ok := prev[v.VIP]; ok && v.Owned && v.Bytes >= old && dt > 0 {
					rates[v.VIP] = uint64(float64(v.Bytes-old) / dt)
				}
				prev[v.VIP] = v.Bytes
			}
			if len(rates) == 0 {
				load = nil
			} else if b, err := rates.MarshalBinary(); err == nil {
				load = b
			}
		}
	}
}
