// Command benchflows measures the stateful filter's connection table on
// one core: memory per flow at the default cap, new flows per second, and
// lookups per second of established flows in a full table (make
// bench-flows). It prints a table; the figures go to docs/forward.md.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/ringway/ringway/forward"
)

func main() {
	flows := flag.Int("flows", 1<<20, "flows to create (the table's cap)")
	lookups := flag.Int("lookups", 5_000_000, "established-flow packets to decide")
	flag.Parse()
	runtime.GOMAXPROCS(1)

	cfg := forward.Config{
		Links: []forward.Link{
			{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Primary: netip.MustParseAddr("203.0.113.1")},
			{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Primary: netip.MustParseAddr("198.51.100.1")},
		},
		Default:  forward.Accept,
		MaxFlows: *flows,
	}
	f, err := forward.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Clients 10.x.y.z (any source beyond the ext router) to one server.
	pkts := make([][]byte, *flows)
	for i := range pkts {
		pkts[i] = udp(uint32(10<<24|i), 198<<24|51<<16|100<<8|10, uint16(1024+i%60000), 7000)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	for _, p := range pkts {
		if r := f.Forward(p, 0, 1, 1); r != forward.ReasonNone {
			fmt.Fprintln(os.Stderr, "new flow refused:", r)
			os.Exit(1)
		}
	}
	newDur := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(pkts) // measured with the packets still live: the delta is the table's
	perFlow := float64(after.HeapAlloc-before.HeapAlloc) / float64(*flows)

	rng := rand.New(rand.NewPCG(1, 2))
	order := make([]int, *lookups)
	for i := range order {
		order[i] = rng.IntN(*flows)
	}
	// Each reply is written into one reused buffer, as a packet arrives in
	// the router's receive buffer: the figure is the table's cost, not the
	// cache misses of a million scattered test packets.
	reply := udp(198<<24|51<<16|100<<8|10, 0, 7000, 0)
	start = time.Now()
	for _, i := range order {
		binary.BigEndian.PutUint32(reply[16:], uint32(10<<24|i))
		binary.BigEndian.PutUint16(reply[22:], uint16(1024+i%60000))
		if r := f.Forward(reply, 1, 0, 2); r != forward.ReasonNone {
			fmt.Fprintln(os.Stderr, "established packet refused:", r)
			os.Exit(1)
		}
	}
	lookDur := time.Since(start)

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "flows\tbytes/flow\tnew flows/s\tlookups/s (1 core, random)\tns/lookup\t")
	fmt.Fprintf(w, "%d\t%.0f\t%.0f\t%.0f\t%.0f\t\n", *flows, perFlow, float64(*flows)/newDur.Seconds(),
		float64(*lookups)/lookDur.Seconds(), float64(lookDur.Nanoseconds())/float64(*lookups))
	w.Flush()
}

func udp(src, dst uint32, sport, dport uint16) []byte {
	b := make([]byte, 28)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], 28)
	b[8], b[9] = 64, 17
	binary.BigEndian.PutUint32(b[12:], src)
	binary.BigEndian.PutUint32(b[16:], dst)
	binary.BigEndian.PutUint16(b[20:], sport)
	binary.BigEndian.PutUint16(b[22:], dport)
	binary.BigEndian.PutUint16(b[24:], 8)
	return b
}
