package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBounds: every timer, rate and queue outside its documented range is
// refused at its line, with a message that says what to write.
func TestBounds(t *testing.T) {
	cases := []struct {
		name, yaml, frag string
	}{
		{"tick 1ns", base + "ring:\n  tick: 1ns #!a\n", "ring.tick is 1ns; write 500µs to 100ms (default 2ms)"},
		{"tick 1s", base + "ring:\n  tick: 1s #!a\n", "ring.tick is 1s; write 500µs to 100ms (default 2ms)"},
		{"ack_timeout 1h", base + "ring:\n  ack_timeout: 1h #!a\n", "ring.ack_timeout is 1h0m0s; write one tick (2ms) to 1s (default 4ms)"},
		{"hop_interval 2s", base + "ring:\n  hop_interval: 2s #!a\n", "ring.hop_interval is 2s; write one tick (2ms) to 1s (default 4ms)"},
		{"join_timeout 1h", base + "ring:\n  join_timeout: 1h #!a\n", "ring.join_timeout is 1h0m0s; write one tick (2ms) to 1m0s (default 200ms)"},
		{"min_rotation 1m", base + "ring:\n  min_rotation: 1m #!a\n", "ring.min_rotation is 1m0s; write 0 to turn it off or at most 10s (default 40ms)"},
		{"token_loss 1h", base + "ring:\n  token_loss: 1h #!a\n", "ring.token_loss is 1h0m0s; write 0 for automatic or at most 1m0s"},
		{"garp interval 1ns", base + "router:\n  garp:\n    interval: 1ns #!a\n", "router.garp.interval is 1ns; write 10ms to 1m0s (default 1s)"},
		{"garp count", base + "router:\n  garp:\n    count: 1000 #!a\n", "router.garp.count is 1000; write 1 to 100 (default 3)"},
		{"garp rate", base + "router:\n  garp:\n    rate: 100000000 #!a\n", "router.garp.rate is 100000000; write 1 to 100000 GARPs per second (default 1000)"},
		{"garp refresh 1ms", base + "router:\n  garp:\n    refresh: 1ms #!a\n", "router.garp.refresh is 1ms; write 0 (never) or 1s to 1h0m0s (default 30s)"},
		{"arp queue 10^8", base + "router:\n  arp_cache:\n    queue: 100000000 #!a\n", "router.arp_cache.queue is 100000000; write 0 to 128 packets (default 3)"},
		{"arp ttl 1ms", base + "router:\n  arp_cache:\n    ttl: 1ms #!a\n", "router.arp_cache.ttl is 1ms; write 1s to 1h0m0s (default 1m0s)"},
		{"nic interval 1ns", base + "monitors:\n  nic:\n    interval: 1ns #!a\n", "monitors.nic.interval is 1ns; write 10ms to 1h0m0s (default 100ms)"},
		{"app interval 1ns", base + "monitors:\n  application:\n    interval: 1ns #!a\n", "monitors.application.interval is 1ns; write 10ms to 1h0m0s (default 1s)"},
		{"ping timeout 1ns", base + "monitors:\n  ping:\n    timeout: 1ns #!a\n", "monitors.ping.timeout is 1ns; write 1ms to 1s (default 500ms)"},
		{"threshold", base + "balancing:\n  threshold: 1000 #!a\n", "balancing.threshold is 1000; write a fraction of the mean load up to 10"},
		{"cooldown", base + "balancing:\n  cooldown: 1000h #!a\n", "balancing.cooldown is 1000h0m0s; write 0s to 24h0m0s (default 30s)"},
		{"flow timeout", base + "filter:\n  timeouts:\n    udp: 10000h #!a\n", "filter.timeouts.udp is 10000h0m0s; write 1s to 720h (30 days) (default 30s)"},
		{"alias", edit(t, "  name: lab", "  name: &n lab\nnode:\n  id: *n #!a"), "node.id: YAML aliases (*n) are not supported; write the value out in full"},
		{"alias in a VIP list", edit(t, "    vips: [198.51.100.91-198.51.100.94]", "    vips: [&v 198.51.100.91, *v] #!a"), "YAML aliases (*v) are not supported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tc.yaml))
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse: %v, want Errors", err)
			}
			line := marks(tc.yaml)["a"]
			for _, e := range errs {
				if e.Line == line && strings.Contains(e.Msg, tc.frag) {
					return
				}
			}
			t.Errorf("no error at test.yaml:%d containing %q; got:\n%v", line, tc.frag, err)
		})
	}
}

// TestBoundsAccepted: the ends of every range are accepted.
func TestBoundsAccepted(t *testing.T) {
	for _, y := range []string{
		"ring: {tick: 500us, hop_interval: 1s, ack_timeout: 1s, join_timeout: 1m, min_rotation: 10s, token_loss: 1m}",
		"ring: {tick: 100ms, hop_interval: 100ms, ack_timeout: 100ms, join_timeout: 100ms, min_rotation: 0s}",
		"router: {garp: {count: 100, interval: 10ms, refresh: 1s, rate: 100000}, arp_cache: {ttl: 1s, queue: 128}}",
		"router: {garp: {count: 1, interval: 1m, refresh: 1h, rate: 1}, arp_cache: {ttl: 1h, queue: 0}}",
		"monitors: {nic: {interval: 10ms}, application: {interval: 1h}, ping: {interval: 10ms, timeout: 1ms}}",
		"balancing: {threshold: 10, min_rate: 1099511627776, cooldown: 24h}",
		"filter: {timeouts: {udp: 1s, tcp_established: 720h}}",
	} {
		if _, err := Parse("test.yaml", []byte(base+y+"\n")); err != nil {
			t.Errorf("%s: %v", y, err)
		}
	}
}

func TestTooManyNodes(t *testing.T) {
	var b strings.Builder
	b.WriteString("cluster: {name: lab, key_file: k}\nnode: {id: n1}\nsubnets: [{interface: e0, prefix: 10.0.0.0/8}]\nnodes:\n")
	for i := 1; i <= MaxNodes+1; i++ {
		fmt.Fprintf(&b, "  - {id: n%d, addresses: [10.0.%d.%d]}\n", i, i/250, 1+i%250)
	}
	_, err := Parse("big.yaml", []byte(b.String()))
	if want := "big.yaml:4:1: nodes lists 1025 nodes; at most 1024 are supported"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestTooManySubnets(t *testing.T) {
	y := edit(t, "routes:", strings.Repeat("  - {interface: x0, prefix: 10.0.0.0/24}\n", MaxSubnets-1)+"routes:")
	_, err := Parse("test.yaml", []byte(y))
	if want := fmt.Sprintf("test.yaml:13:1: subnets lists %d subnets; at most %d are supported", MaxSubnets+1, MaxSubnets); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error does not say %q:\n%v", want, err)
	}
}

func TestTooManyVIPs(t *testing.T) {
	y := edit(t, "vips: [203.0.113.91-203.0.113.94]", "vips: [203.0.113.91-203.0.113.94]\n  - {name: big, interface: big0, prefix: 10.0.0.0/8, vips: [10.0.0.1-10.0.255.255, 10.1.0.1-10.1.0.10]} #!a")
	_, err := Parse("test.yaml", []byte(y))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("at most %d are supported", MaxVIPs)) {
		t.Errorf("error %.1000v does not refuse more than %d VIPs", err, MaxVIPs)
	}
}

// TestErrorsCapped: a file with hundreds of problems reports MaxErrors of
// them, in file order, and counts the rest.
func TestErrorsCapped(t *testing.T) {
	y := base + strings.Repeat("bogus: 1\n", 80)
	_, err := Parse("many.yaml", []byte(y))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse: %v", err)
	}
	if len(errs) != MaxErrors+1 {
		t.Fatalf("got %d errors, want %d and a count", len(errs), MaxErrors)
	}
	if got, want := errs[MaxErrors].Error(), "many.yaml: and 30 more problems; fix these first"; got != want {
		t.Errorf("last line %q, want %q", got, want)
	}
}

func TestFileSizeLimits(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(base+strings.Repeat("# padding\n", MaxConfigSize/10)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(big)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "config "+big+" is larger than 1 MiB") {
		t.Errorf("Load of a 1 MiB+ file: %v", err)
	}
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, make([]byte, MaxSecretSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKey(key); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "larger than 4 KiB") {
		t.Errorf("ReadKey of a 4 KiB+ file: %v", err)
	}
	if _, err := ReadToken(key); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadToken of a 4 KiB+ file: %v", err)
	}
}
