package forward

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func testDirKey(t testing.TB) [DirectoryKeyLen]byte {
	t.Helper()
	var ck [32]byte
	for i := range ck {
		ck[i] = byte(0xa0 + i)
	}
	k, err := DirectoryKey(ck[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// ids returns n node ids 1..n.
func ids(n int) []uint16 {
	ms := make([]uint16, n)
	for i := range ms {
		ms[i] = uint16(i + 1)
	}
	return ms
}

func without(ms []uint16, x uint16) []uint16 {
	return slices.DeleteFunc(slices.Clone(ms), func(m uint16) bool { return m == x })
}

// modelOwners is the slow, obviously right ranking: every member's weight
// computed with the general SipHash over the wire bytes, sorted.
func modelOwners(key [DirectoryKeyLen]byte, members []uint16, row uint16) (uint16, uint16) {
	rank := sipKeyOf(key[16:])
	w := func(domain, v uint16) uint64 {
		return rank.sum64([]byte{byte(domain), byte(domain >> 8), byte(v), byte(v >> 8)})
	}
	type mw struct {
		id uint16
		w  uint64
	}
	var all []mw
	for _, m := range members {
		if m != 0 && !slices.ContainsFunc(all, func(x mw) bool { return x.id == m }) {
			all = append(all, mw{m, mix64(w(0, row) ^ w(1, m))})
		}
	}
	slices.SortFunc(all, func(a, b mw) int {
		if a.w != b.w {
			if a.w > b.w {
				return -1
			}
			return 1
		}
		return int(a.id) - int(b.id)
	})
	var o [2]uint16
	for i := 0; i < len(all) && i < 2; i++ {
		o[i] = all[i].id
	}
	return o[0], o[1]
}

func TestDirectoryModel(t *testing.T) {
	key := testDirKey(t)
	for _, ms := range [][]uint16{nil, {7}, {3, 9}, {5, 1, 4, 2, 3}, ids(64), {65535, 1, 300}} {
		d := NewDirectory(key, ms)
		step := 1
		if len(ms) > 8 {
			step = 61 // a prime stride: every 61st row at 64 members
		}
		for r := 0; r < Rows; r += step {
			a, s := d.Owners(uint16(r))
			wa, ws := modelOwners(key, ms, uint16(r))
			if a != wa || s != ws {
				t.Fatalf("members %v row %d: owners (%d, %d), model (%d, %d)", ms, r, a, s, wa, ws)
			}
		}
	}
}

func TestDirectoryOrderIndependent(t *testing.T) {
	key := testDirKey(t)
	ms := []uint16{4, 17, 2, 9, 33, 1, 8}
	want := NewDirectory(key, ms)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5; i++ {
		p := slices.Clone(ms)
		rnd.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		p = append(p, p[0], 0) // a duplicate and the non-id 0 change nothing
		got := NewDirectory(key, p)
		if got.rows != want.rows || !slices.Equal(got.Members(), want.Members()) {
			t.Fatalf("members %v built another directory than %v", p, ms)
		}
	}
	if !slices.Equal(want.Members(), []uint16{1, 2, 4, 8, 9, 17, 33}) {
		t.Errorf("Members() = %v", want.Members())
	}
}

// TestDirectoryPinned pins the row and owners of one flow under one key, so
// that a change to how rows are computed (which would split a cluster of
// mixed versions) is noticed and comes with a new directoryInfo.
func TestDirectoryPinned(t *testing.T) {
	var ck [32]byte // all zero
	key, err := DirectoryKey(ck[:])
	if err != nil {
		t.Fatal(err)
	}
	d := NewDirectory(key, ids(5))
	k := Key{A: [4]byte{192, 0, 2, 1}, B: [4]byte{198, 51, 100, 10}, PA: 40000, PB: 443, Proto: protoTCP}
	got := fmt.Sprint(d.Row(k))
	a, s := d.Lookup(k)
	got += fmt.Sprintf(" %d %d", a, s)
	const want = "51673 4 1"
	if got != want {
		t.Errorf("row and owners %q, want %q", got, want)
	}
}

func TestDirectoryKey(t *testing.T) {
	var a, b [32]byte
	b[31] = 1
	ka, err := DirectoryKey(a[:])
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := DirectoryKey(b[:])
	if ka == kb {
		t.Fatal("two cluster keys derive the same directory key")
	}
	if _, err := DirectoryKey(a[:31]); err == nil {
		t.Error("a 31-byte cluster key was accepted")
	}
	// Another key puts flows in other rows.
	da, db := NewDirectory(ka, ids(3)), NewDirectory(kb, ids(3))
	same := 0
	for i := range 1000 {
		k := Key{A: [4]byte{10, 0, byte(i >> 8), byte(i)}, B: [4]byte{10, 1, 0, 1}, PA: 5000, PB: 80, Proto: protoTCP}
		if da.Row(k) == db.Row(k) {
			same++
		}
	}
	if same > 5 {
		t.Errorf("%d of 1000 flows share their row under two keys", same)
	}
}

func TestDirectoryOwners(t *testing.T) {
	key := testDirKey(t)
	var nilDir *Directory
	if a, s := nilDir.Lookup(Key{}); a != 0 || s != 0 {
		t.Errorf("nil directory: owners (%d, %d)", a, s)
	}
	if a, s := NewDirectory(key, nil).Owners(7); a != 0 || s != 0 {
		t.Errorf("no members: owners (%d, %d)", a, s)
	}
	one := NewDirectory(key, []uint16{42})
	for r := 0; r < Rows; r++ {
		if a, s := one.Owners(uint16(r)); a != 42 || s != 0 {
			t.Fatalf("one member: row %d owners (%d, %d)", r, a, s)
		}
	}
	for _, n := range []int{2, 3, 8, 64} {
		d := NewDirectory(key, ids(n))
		for r := 0; r < Rows; r++ {
			a, s := d.Owners(uint16(r))
			if a == s || a == 0 || s == 0 || int(a) > n || int(s) > n {
				t.Fatalf("%d members: row %d owners (%d, %d)", n, r, a, s)
			}
		}
	}
}

// binomialSlack is how far a count of Rows trials with success p may be
// from its mean before a test calls it wrong: 5 standard deviations (a
// false alarm less than once in a million runs for a fixed seed, which
// this is: the test key is fixed, so the outcome never changes).
func binomialSlack(p float64) float64 {
	return 5 * math.Sqrt(Rows*p*(1-p))
}

func authCounts(d *Directory) map[uint16]int {
	c := map[uint16]int{}
	for r := 0; r < Rows; r++ {
		a, _ := d.Owners(uint16(r))
		c[a]++
	}
	return c
}

// TestDirectoryBalance: each member is authoritative for about 1/N of the
// rows, and standby for about 1/N. Rows are a random assignment, so the
// spread is the binomial one: at 8 members a standard deviation is 1 % of
// a share, at 64 members 3 %.
func TestDirectoryBalance(t *testing.T) {
	key := testDirKey(t)
	for _, n := range []int{3, 8, 32, 64} {
		d := NewDirectory(key, ids(n))
		var auth, stby [65536]int
		for r := 0; r < Rows; r++ {
			a, s := d.Owners(uint16(r))
			auth[a]++
			stby[s]++
		}
		mean := float64(Rows) / float64(n)
		slack := binomialSlack(1 / float64(n))
		worst := 0.0
		for _, m := range ids(n) {
			for _, c := range []int{auth[m], stby[m]} {
				dev := math.Abs(float64(c) - mean)
				worst = max(worst, dev/mean)
				if dev > slack {
					t.Errorf("%d members: node %d has %d rows, want %.0f ± %.0f", n, m, c, mean, slack)
				}
			}
		}
		t.Logf("%d members: %.0f rows each, worst share off by %.1f %% (5σ = %.1f %%)", n, mean, 100*worst, 100*slack/mean)
	}
}

// TestDirectoryRemove: when a member leaves, exactly the rows it was
// authoritative for move, each to its former standby, and no other row's
// authoritative node changes; that is about 1/N of the rows.
func TestDirectoryRemove(t *testing.T) {
	key := testDirKey(t)
	for _, n := range []int{3, 8, 32, 64} {
		ms := ids(n)
		old := NewDirectory(key, ms)
		gone := uint16(n/2 + 1)
		nw := NewDirectory(key, without(ms, gone))
		for r := 0; r < Rows; r++ {
			oa, os := old.Owners(uint16(r))
			na, _ := nw.Owners(uint16(r))
			if oa != gone && na != oa {
				t.Fatalf("%d members, %d leaves: row %d moved from %d to %d", n, gone, r, oa, na)
			}
			if oa == gone && na != os {
				t.Fatalf("%d members, %d leaves: row %d went to %d, not its standby %d", n, gone, r, na, os)
			}
		}
		// The rows of the node that left spread evenly over the others
		// (the fail-over load of DESIGN.md: its standbys take them over).
		taken := map[uint16]int{}
		for r := 0; r < Rows; r++ {
			if oa, _ := old.Owners(uint16(r)); oa == gone {
				taken[nw.rows[r][0]]++
			}
		}
		share := 1 / float64(n-1)
		for _, m := range without(ms, gone) {
			want := float64(authCounts(old)[gone]) * share
			if math.Abs(float64(taken[m])-want) > 5*math.Sqrt(want*(1-share)) {
				t.Errorf("%d members, %d leaves: node %d took %d of its rows, want about %.0f", n, gone, m, taken[m], want)
			}
		}
		moved := Moved(old, nw)
		if moved != authCounts(old)[gone] {
			t.Errorf("Moved = %d, but %d owned %d rows", moved, gone, authCounts(old)[gone])
		}
		want := float64(Rows) / float64(n)
		if math.Abs(float64(moved)-want) > binomialSlack(1/float64(n)) {
			t.Errorf("%d members, one leaves: %d rows moved, theory %.0f", n, moved, want)
		}
		t.Logf("%d → %d members: %d rows moved (%.2f %%), theory 1/%d = %.2f %%", n, n-1, moved, 100*float64(moved)/Rows, n, 100/float64(n))
	}
}

// TestDirectoryAdd: when a member joins, only rows it becomes
// authoritative for move, about 1/(N+1) of them.
func TestDirectoryAdd(t *testing.T) {
	key := testDirKey(t)
	for _, n := range []int{3, 8, 32, 64} {
		ms := ids(n)
		old := NewDirectory(key, ms)
		joined := uint16(1000 + n)
		nw := NewDirectory(key, append(slices.Clone(ms), joined))
		for r := 0; r < Rows; r++ {
			oa, _ := old.Owners(uint16(r))
			na, _ := nw.Owners(uint16(r))
			if na != oa && na != joined {
				t.Fatalf("%d members, %d joins: row %d moved from %d to %d", n, joined, r, oa, na)
			}
		}
		moved := Moved(old, nw)
		p := 1 / float64(n+1)
		if want := Rows * p; math.Abs(float64(moved)-want) > binomialSlack(p) {
			t.Errorf("%d members, one joins: %d rows moved, theory %.0f", n, moved, want)
		}
		if Moved(old, old) != 0 {
			t.Error("Moved(d, d) != 0")
		}
		t.Logf("%d → %d members: %d rows moved (%.2f %%), theory 1/%d = %.2f %%", n, n+1, moved, 100*float64(moved)/Rows, n+1, 100*p)
	}
}

// TestDirectoryRebuildTime: the node rebuilds the directory off the packet
// path on every membership change; DESIGN.md budgets 50 ms at 64 members.
// The bound asserted is ten times that, for -race on a loaded 2-core VM;
// the figure logged is what docs/forward.md reports
// (BenchmarkNewDirectory measures it properly).
func TestDirectoryRebuildTime(t *testing.T) {
	key := testDirKey(t)
	ms := ids(64)
	best := time.Duration(math.MaxInt64)
	for range 3 {
		start := time.Now()
		NewDirectory(key, ms)
		best = min(best, time.Since(start))
	}
	t.Logf("rebuild at 64 members: %v (best of 3)", best)
	if best > 500*time.Millisecond {
		t.Errorf("rebuild at 64 members took %v, budget 50 ms (500 ms allowed under test)", best)
	}
}

func TestDirectoryLookupAllocs(t *testing.T) {
	d := NewDirectory(testDirKey(t), ids(8))
	k := Key{A: [4]byte{10, 0, 0, 1}, B: [4]byte{10, 0, 0, 2}, PA: 1, PB: 2, Proto: protoUDP}
	var sink uint16
	if n := testing.AllocsPerRun(1000, func() {
		a, s := d.Lookup(k)
		sink += a + s + d.Row(k)
		k.PA++
	}); n != 0 {
		t.Errorf("Lookup allocates %.1f times", n)
	}
	_ = sink
}

func BenchmarkNewDirectory(b *testing.B) {
	key := testDirKey(b)
	for _, n := range []int{3, 8, 64} {
		ms := ids(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				NewDirectory(key, ms)
			}
		})
	}
}

func BenchmarkLookup(b *testing.B) {
	d := NewDirectory(testDirKey(b), ids(8))
	k := Key{A: [4]byte{10, 0, 0, 1}, B: [4]byte{10, 0, 0, 2}, PA: 1, PB: 2, Proto: protoUDP}
	var sink uint16
	b.ReportAllocs()
	for b.Loop() {
		a, _ := d.Lookup(k)
		sink += a
		k.PA++
	}
	_ = sink
}
