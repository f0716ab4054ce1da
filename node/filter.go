package node

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/forward"
)

// filterConfig maps the config file's filter section onto the stateful
// filter's. Router links are the subnets in file order. A subnet name in a
// rule's from (to) means "arrived on (leaves by) that subnet's interface":
// with anti-spoofing on every link this includes every source of the
// subnet's prefix, and also the hosts beyond its routers (docs/forward.md).
func filterConfig(f *config.Config) forward.Config {
	fc := forward.Config{
		Default:       action(f.Filter.Default),
		MaxFlows:      f.Filter.MaxFlows,
		MaxFragments:  f.Filter.MaxFragments,
		Timeouts:      forward.Timeouts(f.Filter.Timeouts),
		Defer:         f.Filter.Defer,
		NoReplication: !f.Filter.Replication,
		FillTimeout:   f.Filter.FillTimeout,
	}
	if symmetricOn(f) {
		fc.Self = uint16(f.LocalIndex())
	}
	link := map[string]int{}
	for i, s := range f.Subnets {
		link[s.Name] = i
		fc.Links = append(fc.Links, forward.Link{Prefix: s.Prefix.Masked(), Primary: f.LocalAddresses()[i]})
	}
	for _, v := range f.AllVIPs() {
		fc.VIPs = append(fc.VIPs, v.Addr)
	}
	for i, r := range f.Filter.Rules {
		fr := forward.Rule{Name: r.Name, Proto: forward.Proto(r.Proto), Ports: ports(r.Ports), Action: action(r.Action)}
		if fr.Name == "" {
			fr.Name = fmt.Sprintf("rule %d", i+1)
		}
		fr.FromLinks, fr.FromPrefixes = side(r.From, link)
		fr.ToLinks, fr.ToPrefixes = side(r.To, link)
		fc.Rules = append(fc.Rules, fr)
	}
	for _, s := range f.Filter.Local {
		fc.Local = append(fc.Local, forward.Service{Proto: forward.Proto(s.Proto), Ports: ports(s.Ports)})
	}
	return fc
}

// side turns a rule's from or to list into links and prefixes; both empty
// mean any (an empty list, or one that contains any).
func side(ns []config.Net, link map[string]int) (links []int, prefixes []netip.Prefix) {
	for _, n := range ns {
		if n.IsAny() {
			return nil, nil
		}
		if i, ok := link[n.Name]; ok && n.Name != "" {
			links = append(links, i)
			continue
		}
		prefixes = append(prefixes, n.Prefix)
	}
	return links, prefixes
}

func ports(rs []config.PortRange) []forward.PortRange {
	var out []forward.PortRange
	for _, r := range rs {
		out = append(out, forward.PortRange{Lo: r.First, Hi: r.Last})
	}
	return out
}

func action(a config.Action) forward.Action {
	if a == config.ActionAccept {
		return forward.Accept
	}
	return forward.Drop
}

// sweepInterval is how often expired flows are swept out of the table.
const sweepInterval = time.Second

// sweepFlows runs the filter's expiry until ctx ends.
func (n *Node) sweepFlows(ctx context.Context) error {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			n.filter.Sweep(n.routerNow())
			n.replicationAlarm()
			n.refillIfOut(time.Now())
		}
	}
}

// routerNow is the router's clock, which the filter's times are on.
func (n *Node) routerNow() int64 { return n.clock() }
