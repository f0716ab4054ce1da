package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringway/ringway/mgmt"
	"github.com/urfave/cli/v2"
)

func flowsCommand() *cli.Command {
	return &cli.Command{
		Name:  "flows",
		Usage: "list the flows the node's stateful filter tracks: endpoints, state, rule, age, packets and bytes each way",
		Flags: append(apiFlags(),
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.StringFlag{Name: "addr", Usage: "only flows with IPv4 address `A` at either end"},
			&cli.IntFlag{Name: "limit", Value: mgmt.DefaultFlowLimit, Usage: fmt.Sprintf("at most `N` flows (1 to %d)", mgmt.MaxFlowLimit)},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("flows takes no arguments after its flags (`ringway flows [--addr A] [--limit N]`); got %d", c.NArg())
			}
			q := mgmt.FlowQuery{Limit: c.Int("limit")}
			if s := c.String("addr"); s != "" {
				a, err := netip.ParseAddr(s)
				if err != nil || !a.Is4() {
					return usagef("flows --addr %q: write an IPv4 address, e.g. --addr 192.0.2.7", s)
				}
				q.Addr = a
			}
			if q.Limit < 1 || q.Limit > mgmt.MaxFlowLimit {
				return usagef("flows --limit %d: write a whole number from 1 to %d", q.Limit, mgmt.MaxFlowLimit)
			}
			cl, err := apiClient(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
			defer cancel()
			fl, err := cl.Flows(ctx, q)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(fl)
			}
			printFlows(c.App.Writer, fl, q.Addr)
			return nil
		},
	}
}

// printFlows renders a node's flows for people, in the order the node
// sent them (oldest first). addr is the --addr the operator gave, if any.
func printFlows(w io.Writer, fl mgmt.Flows, addr netip.Addr) {
	if !fl.Enabled {
		fmt.Fprintf(w, "node %s: the stateful filter is off (filter.enabled is false or absent in its config); it forwards statelessly and tracks no flows\n", fl.Node)
		return
	}
	head := fmt.Sprintf("node %s: %d of %d flows", fl.Node, fl.Count, fl.Max)
	if addr.IsValid() {
		head += fmt.Sprintf(", %d with %s", len(fl.Flows), addr)
	}
	if fl.Truncated {
		hint := "narrow with --addr or raise --limit"
		if addr.IsValid() {
			hint = "raise --limit"
		}
		head += fmt.Sprintf(" (truncated at %d; %s)", len(fl.Flows), hint)
	}
	fmt.Fprintln(w, head)
	if len(fl.Flows) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// Symmetric routing (more than one node): each flow's handler and
	// authoritative node, as two more columns.
	sym := slices.ContainsFunc(fl.Flows, func(f mgmt.Flow) bool { return f.Handler != "" })
	cols := "PROTO\tSRC\tDST\tSTATE\tRULE\tAGE\tIDLE\tPKTS(orig/reply)\tBYTES(orig/reply)"
	if sym {
		cols += "\tHANDLER\tAUTH"
	}
	fmt.Fprintln(tw, cols)
	for _, f := range fl.Flows {
		end := "\n"
		if sym {
			end = fmt.Sprintf("\t%s\t%s\n", cmp.Or(f.Handler, "-"), cmp.Or(f.Authoritative, "-"))
		}
		src, dst := f.Src.String(), f.Dst.String()
		if f.Proto == "icmp" {
			// Echo flows have no ports; the identifier is the initiator's.
			src, dst = fmt.Sprintf("%s id %d", f.Src.Addr(), f.ICMPID), f.Dst.Addr().String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%d/%d%s", f.Proto, src, dst, f.State, f.Rule,
			seconds(f.AgeS), seconds(f.IdleS), f.PacketsOrig, f.PacketsReply, f.BytesOrig, f.BytesReply, end)
	}
	tw.Flush()
}

// seconds renders a duration in seconds in at most two units, whole
// seconds at least: 0s, 59s, 1m05s, 2h03m, 4d05h.
func seconds(s float64) string {
	n := int64(s)
	switch {
	case n < 60:
		return fmt.Sprintf("%ds", max(n, 0))
	case n < 3600:
		return fmt.Sprintf("%dm%02ds", n/60, n%60)
	case n < 86400:
		return fmt.Sprintf("%dh%02dm", n/3600, n%3600/60)
	default:
		return fmt.Sprintf("%dd%02dh", n/86400, n%86400/3600)
	}
}

// filterLine is the filter's line of `ringway status`: on or off, flows
// of the cap, and the nonzero drops, most first.
func filterLine(f mgmt.FilterStatus) string {
	if !f.Enabled {
		return "off (forwarding statelessly; filter.enabled is false or absent)"
	}
	type drop struct {
		reason string
		n      uint64
	}
	var drops []drop
	for r, n := range f.Drops {
		if n > 0 {
			drops = append(drops, drop{r, n})
		}
	}
	slices.SortFunc(drops, func(a, b drop) int {
		return cmp.Or(cmp.Compare(b.n, a.n), strings.Compare(a.reason, b.reason))
	})
	parts := make([]string, len(drops))
	for i, d := range drops {
		parts[i] = fmt.Sprintf("%s %d", d.reason, d.n)
	}
	ds := "none"
	if len(parts) > 0 {
		ds = strings.Join(parts, ", ")
	}
	return fmt.Sprintf("on, %d of %d flows, drops: %s", f.Flows, f.MaxFlows, ds)
}

// tunnelLine summarises the inter-node tunnel of a node's filter: packets
// it redirected and carried, and the first packets it held until their
// register was acknowledged.
func tunnelLine(t mgmt.TunnelStatus) string {
	s := fmt.Sprintf("redirected %d, packets sent %d received %d, registry %d flows, hints %d",
		t.Redirects, t.Sent, t.Received, t.Registry, t.HintsHeld)
	if d := t.Defer; d.Deferred > 0 || d.Overflow > 0 {
		s += fmt.Sprintf("; first packets held %d (released by ack %d, by timeout %d, not held: full %d)",
			d.Deferred, d.ReleasedAck, d.ReleasedTimeout, d.Overflow)
	}
	var drops uint64
	for _, v := range t.Drops {
		drops += v
	}
	if drops > 0 {
		s += fmt.Sprintf("; %d dropped (see --json)", drops)
	}
	return s
}
