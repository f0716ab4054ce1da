package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ringway/ringway/lab/failover"
)

func TestPrintTableRatios(t *testing.T) {
	rows := []failover.Row{
		{System: "ringway", Config: "defaults", Trials: 20, P50Ms: 40, P99Ms: 50, MaxMs: 50},
		{System: "keepalived", Config: "VRRPv3, advert 100ms", Trials: 20, P50Ms: 316, P99Ms: 325, MaxMs: 325},
	}
	var b strings.Builder
	printTable(&b, rows)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("table has %d lines, want header, rule and 2 rows:\n%s", len(lines), b.String())
	}
	var got [][]string
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		got = append(got, f[len(f)-2:])
	}
	if d := cmp.Diff([][]string{{"1.0x", "1.0x"}, {"7.9x", "6.5x"}}, got); d != "" {
		t.Errorf("p50/ringway, p99/ringway columns (-want +got):\n%s\n%s", d, b.String())
	}
	if !strings.Contains(lines[0], "p99/ringway") {
		t.Errorf("header lacks the ratio column: %q", lines[0])
	}

	b.Reset()
	printTable(&b, rows[1:])
	if strings.Contains(b.String(), "ringway") {
		t.Errorf("without a ringway row there is no ratio column:\n%s", b.String())
	}
}
