package vipstate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// table1 is the patent's Table 1 with its hosts 1.1.1.5 and 1.1.1.6 as
// nodes 1 and 2 (1.1.1.1 to 1.1.1.4 are its VIPs).
func table1(t testing.TB) Table {
	t.Helper()
	tab, err := New(2, []Row{
		{VIP: ip("1.1.1.1"), Current: 1, Preferred: 2, Persistence: PersistNone},
		{VIP: ip("1.1.1.2"), Current: 1, Preferred: 1, Persistence: PersistCurrent},
		{VIP: ip("1.1.1.3"), Current: 2, Preferred: None, Persistence: PersistNone},
		{VIP: ip("1.1.1.4"), Current: 2, Preferred: 2, Persistence: PersistPreferred},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// addrs lets cmp compare netip.Addr (its fields are unexported).
var addrs = cmpopts.EquateComparable(netip.Addr{})

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// lab builds n VIPs from 10.0.0.1 upward on two subnets, grouped in pairs
// (VIP i and VIP i+n/2 form group i+1), spread round-robin over nodes.
func lab(t testing.TB, nodes, n int) Table {
	t.Helper()
	rows := make([]Row, n)
	half := n / 2
	for i := range rows {
		g := i % half
		sub := uint8(i / half)
		rows[i] = Row{
			VIP:     fromIPv4(ipv4(ip("10.0.0.1")) + uint32(i)),
			Subnet:  sub,
			Current: Node(g%nodes + 1),
			Group:   uint16(g + 1),
		}
	}
	tab, err := New(nodes, rows)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestEncodeRoundTrip(t *testing.T) {
	for name, tab := range map[string]Table{
		"empty":  {},
		"table1": table1(t),
		"lab":    lab(t, 3, 16),
	} {
		t.Run(name, func(t *testing.T) {
			b, err := tab.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got Table
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if diff := cmp.Diff(tab.Rows(), got.Rows(), addrs); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
			if got.Nodes() != tab.Nodes() || got.rotation != tab.rotation || got.balanceAt != tab.balanceAt {
				t.Errorf("header: got nodes %d rotation %d balanceAt %d, want %d %d %d",
					got.Nodes(), got.rotation, got.balanceAt, tab.Nodes(), tab.rotation, tab.balanceAt)
			}
			// Every strict prefix is a short input.
			for i := range len(b) {
				var u Table
				if err := u.UnmarshalBinary(b[:i]); !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("UnmarshalBinary(first %d of %d bytes) = %v, want io.ErrUnexpectedEOF", i, len(b), err)
				}
			}
		})
	}
}

// TestEncodeSize pins the size on the token of 4096-VIP tables: the lab's
// shape (2048 gateway pairs on two subnets, 8 nodes) and a wide one where
// every field needs a long varint (VIPs 2^20 apart, subnet 255, nodes above
// 127 in a 1024-node map, group numbers above 16383). Both must stay under
// 64 KiB. (The bound holds for any 4096-VIP table: a row is at most 15 bytes,
// 4096 × 15 + 28 < 65536.)
func TestEncodeSize(t *testing.T) {
	wide := make([]Row, 4096)
	for i := range wide {
		wide[i] = Row{
			VIP:         fromIPv4(uint32(i)<<20 + 1),
			Subnet:      255,
			Current:     Node(1000 - i%100),
			Preferred:   Node(900 - i%100),
			Persistence: PersistCurrent,
			Group:       uint16(60000 - i),
		}
	}
	wideTab, err := New(1024, wide)
	if err != nil {
		t.Fatal(err)
	}
	for name, tab := range map[string]Table{"lab": lab(t, 8, 4096), "wide": wideTab} {
		b, err := tab.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: 4096 VIPs encode in %d bytes (%.1f per VIP)", name, len(b), float64(len(b))/4096)
		if len(b) >= 64<<10 {
			t.Errorf("%s: 4096 VIPs encode in %d bytes, want < 65536", name, len(b))
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good, _ := table1(t).MarshalBinary()
	// good: 01 02 00 00 04 | 81 82 84 08 (1.1.1.1) 00 (subnet) 00 (flags) 01 (current) 02 (preferred) 00 (group) | 01 (+1: 1.1.1.2) ...
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"version", append([]byte{2}, good[1:]...), "version 2"},
		{"too many nodes", []byte{1, 0x81, 0x08, 0, 0, 0}, "node count 1025 exceeds 1024"},
		{"row count beyond input", []byte{1, 2, 0, 0, 0x80, 0x80, 0x04}, "row count"},
		{"non-minimal varint", []byte{1, 0x82, 0x00, 0, 0, 0}, "non-minimal"},
		{"trailing byte", append(bytes.Clone(good), 0), "after the last row"},
		{"bad flags", patch(good, 10, 0x08), "unknown flag bits"},
		{"persistence 2", patch(good, 10, 0x02), "persistence 2"},
		{"current beyond node map", patch(good, 11, 3), "current host 3 exceeds 2"},
		{"duplicate VIP", patch(good, 14, 0), "strictly increasing"},
		{"closed with a host", patch(good, 10, 0x04), "closed but has current host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tab Table
			err := tab.UnmarshalBinary(tt.b)
			if err == nil {
				t.Fatalf("UnmarshalBinary(% x) succeeded, want error containing %q", tt.b, tt.want)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tt.want)) && !(tt.want == "row count" && errors.Is(err, io.ErrUnexpectedEOF)) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func patch(b []byte, i int, v byte) []byte {
	b = bytes.Clone(b)
	b[i] = v
	return b
}

// FuzzTableDecode checks that any input either fails to decode or decodes to
// a valid table that encodes back to exactly the same bytes (the encoding is
// canonical), and never panics.
// SameRows ignores the rotation counters and nothing else.
func TestSameRows(t *testing.T) {
	enc := func(tab Table) []byte {
		b, err := tab.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	base := table1(t)
	later := base
	later.rotation, later.balanceAt = 1000, 1010 // multi-byte varints
	moved, err := base.Move(ip("1.1.1.1"), 2)
	if err != nil {
		t.Fatal(err)
	}
	wider, err := New(3, base.Rows())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		a, b []byte
		want bool
	}{
		{"identical", enc(base), enc(base), true},
		{"only the rotation counters differ", enc(base), enc(later), true},
		{"an owner differs", enc(base), enc(moved), false},
		{"the node map size differs", enc(base), enc(wider), false},
		{"malformed", enc(base)[:3], enc(base)[:3], false},
		{"empty", nil, nil, false},
		{"unknown version", append([]byte{9}, enc(base)[1:]...), append([]byte{9}, enc(base)[1:]...), false},
	} {
		if got := SameRows(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: SameRows = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func FuzzTableDecode(f *testing.F) {
	// The empty table: version 1, 0 nodes, rotation 0, balanceAt 0, 0 rows.
	f.Add([]byte{1, 0, 0, 0, 0})
	// One VIP 10.0.0.1 (delta 0x0a000001), subnet 0, persistence preferred
	// (flags 3), current 1, preferred 1, group 0, in a 2-node map.
	f.Add([]byte{1, 2, 0, 0, 1, 0x81, 0x80, 0x80, 0x50, 0, 3, 1, 1, 0})
	// A closed VIP (flags 4) with no host.
	f.Add([]byte{1, 2, 0, 0, 1, 0x81, 0x80, 0x80, 0x50, 0, 4, 0, 0, 0})
	// Short: says one row, has none.
	f.Add([]byte{1, 2, 0, 0, 1})
	for _, tab := range []Table{table1(f), lab(f, 3, 8)} {
		b, _ := tab.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		same := SameRows(b, b) // never panics, on any input
		var tab Table
		if err := tab.UnmarshalBinary(b); err != nil {
			return
		}
		if !same {
			t.Fatal("SameRows(b, b) is false for a valid table")
		}
		if _, err := New(tab.Nodes(), tab.Rows()); err != nil {
			t.Fatalf("decoded table fails New: %v", err)
		}
		again, err := tab.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n in  % x\n out % x", b, again)
		}
	})
}

func ExampleTable_MarshalBinary() {
	tab, _ := New(2, []Row{{VIP: netip.MustParseAddr("203.0.113.91"), Current: 1}})
	b, _ := tab.MarshalBinary()
	fmt.Printf("% x\n", b)
	// Output: 01 02 00 00 01 db e2 81 d8 0c 00 00 01 00 00
}
