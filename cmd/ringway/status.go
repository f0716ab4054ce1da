package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/mgmt"
	"github.com/urfave/cli/v2"
)

// apiFlags are how every API client command finds a node: the config file's
// management section, or --node and --token-file.
func apiFlags() []cli.Flag {
	return []cli.Flag{
		configFlag(),
		&cli.StringFlag{Name: "node", Usage: "the node to ask: its management `ADDR` (host:port or URL), or its id from the config's nodes when management.listen is a wildcard (0.0.0.0:PORT); default: management.listen from the config"},
		&cli.StringFlag{Name: "token-file", Usage: "admin token `FILE`; default: management.token_file from the config"},
		&cli.BoolFlag{Name: "insecure", Usage: "do not verify the node's TLS certificate (self-signed lab certificates)"},
	}
}

// apiClient builds a management client from the flags.
func apiClient(c *cli.Context) (*mgmt.Client, error) {
	addr, tokenFile := c.String("node"), c.String("token-file")
	byID := addr != "" && !strings.ContainsAny(addr, ":/") // a node id, not host:port or a URL
	if addr == "" || byID || tokenFile == "" {
		cfg, err := config.Load(c.String("config"))
		if err != nil {
			return nil, fmt.Errorf("need the node's address and token: give --node and --token-file, or a readable config (-c): %w", err)
		}
		if addr == "" || byID {
			if addr == "" {
				addr = cfg.Management.Listen
			} else if addr, err = nodeAPIAddr(cfg, addr); err != nil {
				return nil, err
			}
			if addr != "" && cfg.Management.TLSCert != "" {
				addr = "https://" + addr
			}
		}
		if tokenFile == "" {
			tokenFile = cfg.Management.TokenFile
		}
	}
	if addr == "" {
		return nil, errors.New("the management API is disabled in this config (management.listen is empty); give --node")
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	return mgmt.NewClient(addr, strings.TrimSpace(string(b)), c.Bool("insecure")), nil
}

// nodeAPIAddr returns where node id's management API listens, known from
// cfg only when every node listens on a wildcard address (management.listen
// 0.0.0.0:PORT, the same file on every node): the node's primary address in
// the first subnet and that port.
func nodeAPIAddr(cfg *config.Config, id string) (string, error) {
	idx := cfg.IndexOf(id)
	if idx == 0 {
		ids := make([]string, len(cfg.Nodes))
		for j, n := range cfg.Nodes {
			ids[j] = n.ID
		}
		return "", usagef("--node %q: not a management address (host:port) nor a node id of the config (%s)", id, strings.Join(ids, ", "))
	}
	if cfg.Management.Listen == "" {
		return "", nil // the API is off
	}
	host, port, err := net.SplitHostPort(cfg.Management.Listen)
	if err != nil {
		return "", fmt.Errorf("--node %s: management.listen %q: %w", id, cfg.Management.Listen, err)
	}
	if a, err := netip.ParseAddr(host); host != "" && (err != nil || !a.IsUnspecified()) {
		return "", usagef("--node %s: management.listen is %s, not a wildcard (0.0.0.0:%s), so node %s's management address is not known from the config; give it as --node HOST:PORT", id, cfg.Management.Listen, port, id)
	}
	return net.JoinHostPort(cfg.PrimaryAddress(idx, 0).String(), port), nil
}

func statusCommand() *cli.Command {
	return viewCommand("status", "show the cluster as one node sees it: members, token, VIP table, its filter", printStatus,
		func(st mgmt.Status) any { return st })
}

// printStatus renders a status for people.
func printStatus(w io.Writer, st mgmt.Status) {
	fmt.Fprintf(w, "cluster %s, seen from %s (%s)\n", st.Cluster, st.Node, st.Mode)
	switch {
	case len(st.Members) == 0:
		fmt.Fprintln(w, "ring:    none yet (starting or between rings)")
	default:
		extra := ""
		if st.Alone {
			extra = ", alone"
		}
		if st.NoQuorum {
			extra += ", NO QUORUM: serving nothing"
		}
		fmt.Fprintf(w, "ring:    %d, seq %d, members %s%s\n", st.RingID, st.Seq, strings.Join(st.Members, " "), extra)
		rot := fmt.Sprintf("rotation %.1f ms", st.Rotation)
		if st.Rotation == 0 {
			rot = "rotation not measured yet" // two visits of the token
		}
		fmt.Fprintf(w, "token:   at %s (as far as %s knows), %s\n", orDash(st.Holder), st.Node, rot)
		fmt.Fprintf(w, "switch:  %s\n", switchesLine(st.Balancing, st.Auto))
	}
	var out []string
	if len(st.Closed) > 0 {
		out = append(out, "closed "+strings.Join(st.Closed, " "))
	}
	if len(st.Unhealthy) > 0 {
		out = append(out, "unhealthy "+strings.Join(st.Unhealthy, " "))
	}
	if len(out) > 0 {
		fmt.Fprintf(w, "out:     %s (they answer no VIP)\n", strings.Join(out, "; "))
	}
	if len(st.LinksDown) > 0 {
		fmt.Fprintf(w, "links:   %s down on %s\n", strings.Join(st.LinksDown, " "), st.Node)
	}
	if len(st.PingFailing) > 0 {
		fmt.Fprintf(w, "ping:    %v do not answer %s\n", st.PingFailing, st.Node)
	}
	if st.AppFailure != "" {
		fmt.Fprintf(w, "app:     check failed on %s: %s\n", st.Node, st.AppFailure)
	}
	if line := loadLine(st); line != "" {
		fmt.Fprintf(w, "load:    %s\n", line)
	}
	if len(st.Links) > 0 {
		var ls []string
		for _, l := range st.Links {
			ls = append(ls, fmt.Sprintf("%s in %s out %s", l.Name, rate(l.Rx), rate(l.Tx)))
		}
		fmt.Fprintf(w, "nics:    %s (on %s)\n", strings.Join(ls, ", "), st.Node)
	}
	if st.Filter != nil {
		fmt.Fprintf(w, "filter:  %s\n", filterLine(*st.Filter))
		if t := st.Filter.Tunnel; t != nil {
			fmt.Fprintf(w, "tunnel:  %s\n", tunnelLine(*t))
			if r := t.Replication; r != nil {
				fmt.Fprintf(w, "repl:    %s\n", replicationLine(*r))
				if r.Fill != nil {
					fmt.Fprintf(w, "fill:    %s\n", fillLine(*r.Fill))
				}
			}
		}
	}
	if st.Config != nil {
		fmt.Fprintf(w, "config:  %s\n", configLine(st))
	}
	fmt.Fprintln(w)
	printVIPs(w, st)
	printEvents(w, st)
	printMoves(w, st)
}

// loadLine is every node's load (the sum of its VIPs' rates on the token);
// the switch: line shows L.BAL and AUTO.
func loadLine(st mgmt.Status) string {
	if len(st.NodeStates) == 0 {
		return ""
	}
	var parts []string
	for _, n := range st.NodeStates {
		parts = append(parts, fmt.Sprintf("%s %s", n.ID, rate(n.Load)))
	}
	return strings.Join(parts, ", ")
}

// rate renders bytes/s for people.
func rate(bps uint64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.1f GB/s", float64(bps)/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1f MB/s", float64(bps)/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.1f kB/s", float64(bps)/1e3)
	}
	return fmt.Sprintf("%d B/s", bps)
}

// printMoves renders the last VIP moves with their reasons.
func printMoves(w io.Writer, st mgmt.Status) {
	if len(st.Moves) == 0 {
		return
	}
	ms := st.Moves[max(0, len(st.Moves)-statusEvents):]
	fmt.Fprintf(w, "\nVIP moves (last %d of %d %s remembers, oldest first):\n", len(ms), len(st.Moves), st.Node)
	for _, m := range ms {
		fmt.Fprintf(w, "  %s  %-15s %s -> %s (%s)\n", m.Time.Local().Format("15:04:05.000"), m.VIP, orDash(m.From), orDash(m.To), m.Reason)
	}
}

// statusEvents is how many of the last membership changes status shows.
const statusEvents = 5

// printEvents renders the last membership changes with their causes.
func printEvents(w io.Writer, st mgmt.Status) {
	if len(st.Events) == 0 {
		return
	}
	evs := st.Events[max(0, len(st.Events)-statusEvents):]
	fmt.Fprintf(w, "\nmembership changes (last %d of %d %s remembers, oldest first):\n", len(evs), len(st.Events), st.Node)
	for _, e := range evs {
		fmt.Fprintf(w, "  %s  %-11s %s; members %s\n", e.Time.Local().Format("15:04:05.000"), e.Kind, e.Cause, orDash(strings.Join(e.Members, " ")))
	}
}

// printVIPs renders the VIP table.
func printVIPs(w io.Writer, st mgmt.Status) {
	if len(st.VIPs) == 0 {
		fmt.Fprintln(w, "VIPs:    no table yet (it arrives with the first ring)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VIP\tSUBNET\tOWNER\tPREFERRED\tPERSISTENCE\tGROUP\tRATE")
	for _, v := range st.VIPs {
		owner := orDash(v.Owner)
		if v.Closed {
			owner = "CLOSED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.VIP, v.Subnet, owner, orDash(v.Preferred), v.Persistence, orDash(v.Group), rate(v.Rate))
	}
	tw.Flush()
}

// nodeRow is one node of the node map as `ringway node list` shows it.
type nodeRow struct {
	Node      string `json:"node"`
	State     string `json:"state"` // member, not in ring, or "unknown" when the answering node is between rings
	Holder    bool   `json:"holder"`
	Owns      int    `json:"owns"`      // VIPs it answers
	Preferred int    `json:"preferred"` // VIPs that prefer it
}

// nodeRows derives the node list from a status.
func nodeRows(st mgmt.Status) []nodeRow {
	rows := make([]nodeRow, 0, len(st.Nodes))
	for _, id := range st.Nodes {
		r := nodeRow{Node: id, State: "not in ring", Holder: id == st.Holder && id != ""}
		switch {
		case len(st.Members) == 0:
			r.State = "unknown"
		case slices.Contains(st.Members, id):
			r.State = "member"
		}
		if slices.Contains(st.Closed, id) {
			r.State += ", closed"
		}
		if slices.Contains(st.Unhealthy, id) {
			r.State += ", unhealthy"
		}
		for _, v := range st.VIPs {
			if v.Owner == id && !v.Closed {
				r.Owns++
			}
			if v.Preferred == id {
				r.Preferred++
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// printNodes renders the node list.
func printNodes(w io.Writer, st mgmt.Status) {
	fmt.Fprintf(w, "cluster %s, seen from %s (%s)\n", st.Cluster, st.Node, st.Mode)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tTOKEN\tOWNS\tPREFERRED BY")
	for _, r := range nodeRows(st) {
		tok := "-"
		if r.Holder {
			tok = "holder"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d VIPs\t%d VIPs\n", r.Node, r.State, tok, r.Owns, r.Preferred)
	}
	tw.Flush()
}

// viewCommand is `ringway status`, `vip list` and `node list`: the status,
// fetched once, rendered by print (or as JSON by asJSON).
func viewCommand(name, usage string, print func(io.Writer, mgmt.Status), asJSON func(mgmt.Status) any) *cli.Command {
	return &cli.Command{
		Name:  name,
		Usage: usage,
		Flags: append(apiFlags(), &cli.BoolFlag{Name: "json", Usage: "print JSON"}),
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("%s takes no arguments after its flags; got %d", name, c.NArg())
			}
			cl, err := apiClient(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
			defer cancel()
			st, err := cl.Status(ctx)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(asJSON(st))
			}
			print(c.App.Writer, st)
			return nil
		},
	}
}

func nodeCommand() *cli.Command {
	return &cli.Command{
		Name:  "node",
		Usage: "list the nodes of the node map, or close or open one",
		Subcommands: []*cli.Command{
			viewCommand("list", "every node of the node map: in the ring or not, token holder, VIPs it owns and VIPs that prefer it",
				printNodes, func(st mgmt.Status) any { return nodeRows(st) }),
			nodeOpCommand("close", "hand the node's VIPs to the others at its next turn; it stays in the ring but answers no VIP until opened (maintenance)"),
			nodeOpCommand("open", "let a closed node answer VIPs again (preferred VIPs return to it)"),
			nodeDrainCommand(),
		},
	}
}

func nodeOpCommand(name, usage string) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage, ArgsUsage: "NODE", Flags: apiFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("node %s needs NODE after any flags (`ringway node %s [-c FILE] NODE`); got %d arguments", name, name, c.NArg())
			}
			cl, err := apiClient(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
			defer cancel()
			node := c.Args().Get(0)
			if err := cl.Node(ctx, mgmt.NodeOp{Op: name, Node: node}); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "queued: %s %s (applied when the node you asked next holds the token; check with `ringway node list`)\n", name, node)
			return nil
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func vipCommand() *cli.Command {
	op := func(name, usage, args string) *cli.Command {
		return &cli.Command{
			Name: name, Usage: usage, ArgsUsage: args, Flags: apiFlags(),
			Action: func(c *cli.Context) error {
				want := 1
				if name == "move" {
					want = 2
				}
				if c.NArg() != want {
					return usagef("vip %s needs %s after any flags (`ringway vip %s [-c FILE] %s`); got %d arguments", name, args, name, args, c.NArg())
				}
				vip, err := netip.ParseAddr(c.Args().Get(0))
				if err != nil {
					return usagef("vip %s: %v", name, err)
				}
				cl, err := apiClient(c)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
				defer cancel()
				if err := cl.VIP(ctx, mgmt.VIPOp{Op: name, VIP: vip, Node: c.Args().Get(1)}); err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "queued: %s %s %s (applied when the node next holds the token; check with `ringway status`)\n",
					name, vip, c.Args().Get(1))
				return nil
			},
		}
	}
	return &cli.Command{
		Name:  "vip",
		Usage: "list the VIPs, or change one: move it, set or clear its preference or stickiness, close or open it",
		Subcommands: []*cli.Command{
			viewCommand("list", "the VIP table: owner, preferred node, persistence, group", printVIPs,
				func(st mgmt.Status) any { return st.VIPs }),
			op("move", "move a VIP (and its group) to a node; sets the preference (patent: drag and drop)", "VIP NODE"),
			op("prefer", "make the VIP's current node its preferred node", "VIP"),
			op("unprefer", "clear the VIP's preference (persistence none)", "VIP"),
			op("stick", "make the VIP sticky to its current node (persistence current)", "VIP"),
			op("unstick", "clear the VIP's stickiness (persistence none)", "VIP"),
			op("close", "stop answering the VIP on every node until opened", "VIP"),
			op("open", "answer a closed VIP again", "VIP"),
		},
	}
}
