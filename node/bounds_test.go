package node

import (
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ring/ringnet"
	"github.com/ringway/ringway/ring/ringnet/ringnettest"
	"github.com/ringway/ringway/ringstate"
	"github.com/ringway/ringway/router"
	"github.com/ringway/ringway/router/routertest"
)

const boundsBase = `cluster: {name: lab, key_file: cluster.key}
node: {id: n2}
nodes:
  - {id: n1, addresses: [203.0.113.1, 198.51.100.1]}
  - {id: n2, addresses: [203.0.113.2, 198.51.100.2]}
  - {id: n3, addresses: [203.0.113.3, 198.51.100.3]}
subnets:
  - {name: ext, interface: ext0, prefix: 203.0.113.0/24, vips: [203.0.113.91-203.0.113.94]}
  - {name: int, interface: int0, prefix: 198.51.100.0/24, vips: [198.51.100.91-198.51.100.94]}
management: {listen: ""}
`

// TestRunAcceptsWhatCheckAccepts: for the edges of every range `config
// check` accepts, the validators `ringway run` meets after it (the ring
// core's, the ring driver's, the router's, the VIP table's) accept the
// config too. Before, `ring.tick: 1ns` or `ack_timeout: 1h` passed check
// and failed at start.
func TestRunAcceptsWhatCheckAccepts(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the router is Linux only")
	}
	// The edges come from config's bounds, so that widening one there
	// without the run side following fails here.
	lo, hi := config.MinTick, config.MaxTick
	edges := map[string]string{
		"smallest ring timers": fmt.Sprintf("ring: {tick: %v, hop_interval: %v, ack_timeout: %v, ack_retries: 0, join_timeout: %v, min_rotation: 0s}", lo, lo, 2*lo, lo),
		"largest ring timers": fmt.Sprintf("ring: {tick: %v, hop_interval: %v, ack_timeout: %v, ack_retries: %d, join_timeout: %v, min_rotation: %v}",
			lo, config.MaxHopInterval, config.MaxAckTimeout, config.MaxAckRetries, config.MaxJoinTimeout, config.MaxMinRotation),
		"largest token_loss": fmt.Sprintf("ring: {tick: %v, token_loss: %v}", lo, config.MaxTokenLoss),
		"longest tick":       fmt.Sprintf("ring: {tick: %v, hop_interval: %v, ack_timeout: %v, join_timeout: %v}", hi, hi, hi, hi),
		"longest tick, max": fmt.Sprintf("ring: {tick: %v, hop_interval: %v, ack_timeout: %v, ack_retries: %d, join_timeout: %v, min_rotation: %v}",
			hi, config.MaxHopInterval, config.MaxAckTimeout, config.MaxAckRetries, config.MaxJoinTimeout, config.MaxMinRotation),
		"garp and arp, small": fmt.Sprintf("router: {garp: {count: 1, interval: %v, refresh: %v, rate: 1}, arp_cache: {ttl: %v, queue: 0}}",
			config.MinGARPInterval, config.MinGARPRefresh, config.MinARPCacheTTL),
		"garp and arp, large": fmt.Sprintf("router: {garp: {count: %d, interval: %v, refresh: %v, rate: %d}, arp_cache: {ttl: %v, queue: %d}}",
			config.MaxGARPCount, config.MaxGARPInterval, config.MaxGARPRefresh, config.MaxGARPRate, config.MaxARPCacheTTL, config.MaxARPCacheQueue),
		"garp refresh off": "router: {garp: {refresh: 0s}}",
		"balancing, large": fmt.Sprintf("balancing: {threshold: %v, min_rate: %d, cooldown: %v}", config.MaxThreshold, int64(config.MaxMinRate), config.MaxCooldown),
		"balancing, small": fmt.Sprintf("balancing: {threshold: 0.01, min_rate: 0, cooldown: 0s}\nring: {tick: %v, hop_interval: %v, ack_timeout: %v, join_timeout: %v, min_rotation: %v}", hi, hi, hi, hi, config.MaxMinRotation),
		"filter":           fmt.Sprintf("filter: {enabled: true, default: accept, max_flows: 1, max_fragments: 1, timeouts: {udp: %v, tcp_established: %v}}", config.MinFlowTimeout, config.MaxFlowTimeout),
		"monitors": fmt.Sprintf("monitors: {nic: {interval: %v}, application: {enabled: true, interval: %v}, ping: {interval: %v, timeout: %v}}",
			config.MinMonitorInterval, config.MaxMonitorInterval, config.MinMonitorInterval, config.MinPingTimeout),
		"majority": "quorum: majority",
	}
	for name, y := range edges {
		t.Run(name, func(t *testing.T) { runSideAccepts(t, boundsBase+y+"\n") })
	}
	t.Run("most nodes, subnets and VIPs", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("cluster: {name: big, key_file: k}\nnode: {id: n1024}\nmanagement: {listen: \"\"}\nnodes:\n")
		for i := 1; i <= config.MaxNodes; i++ {
			fmt.Fprintf(&b, "  - {id: n%d, addresses: [", i)
			for s := 0; s < config.MaxSubnets; s++ {
				fmt.Fprintf(&b, "10.%d.%d.%d, ", s, i/200, 1+i%200)
			}
			b.WriteString("]}\n")
		}
		b.WriteString("subnets:\n")
		for s := 0; s < config.MaxSubnets; s++ {
			fmt.Fprintf(&b, "  - {interface: e%d, prefix: 10.%d.0.0/16, vips: [10.%d.16.1-10.%d.47.255]}\n", s, s, s, s)
		}
		runSideAccepts(t, b.String())
	})
}

// runSideAccepts parses y as `config check` does and builds what `run`
// builds from it, over fakes instead of sockets and interfaces.
func runSideAccepts(t *testing.T, y string) {
	t.Helper()
	f, err := config.Parse("edge.yaml", []byte(y))
	if err != nil {
		t.Fatalf("config check refuses the edge: %v", err)
	}
	log := slog.New(slog.DiscardHandler)
	table, err := initialTable(f)
	if err != nil {
		t.Fatalf("VIP table: %v", err)
	}
	rc := ringConfig(f)
	rc.Holder = ringstate.New(ringstate.Config{Initial: table, Balance: balanceConfig(f)})
	rc.Rand = cryptoRand
	core, err := ring.NewNode(rc)
	if err != nil {
		t.Fatalf("ring core: %v", err)
	}
	dc := driverConfig(f, make([]byte, config.KeySize), log)
	dc.Listen = ringnettest.New().Listen
	d, err := ringnet.New(dc, core)
	if err != nil {
		t.Fatalf("ring driver: %v", err)
	}
	d.Close()
	rtc := routerConfig(f, log)
	rtc.ManageKernel = false
	rtc.Devices = &router.Devices{TUN: routertest.NewFakeTUN()}
	for i := range rtc.Links {
		rtc.Devices.Links = append(rtc.Devices.Links, routertest.NewFakeLink(net.HardwareAddr{2, 0, 0, 0, 0, byte(i + 1)}, 1500))
	}
	rt, err := router.New(rtc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	rt.Close()
}
