package forward

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"slices"
)

// Rows is the number of rows of the flow directory: a flow's row is 16 bits
// of a keyed hash of its canonical key (DESIGN.md "Symmetric routing and
// stateful fail-over").
const Rows = 1 << 16

// DirectoryKeyLen is the length of the directory's secret.
const DirectoryKeyLen = 32

// directoryInfo is the HKDF info that derives the directory's secret from
// the cluster key. Changing how rows are computed changes this string: two
// nodes that computed rows differently must not believe they agree.
const directoryInfo = "ringway flow directory v1"

// DirectoryKey derives the flow directory's secret from the 32-byte cluster
// key: HKDF-SHA256 (RFC 5869) with no salt and info "ringway flow directory
// v1". Every node of a cluster derives the same secret; nobody without the
// cluster key can tell which row a flow falls in.
func DirectoryKey(clusterKey []byte) ([DirectoryKeyLen]byte, error) {
	var k [DirectoryKeyLen]byte
	if len(clusterKey) != 32 {
		return k, fmt.Errorf("cluster key is %d bytes, want 32", len(clusterKey))
	}
	b, err := hkdf.Key(sha256.New, clusterKey, nil, directoryInfo, DirectoryKeyLen)
	if err != nil {
		return k, err
	}
	copy(k[:], b)
	return k, nil
}

// Directory maps each flow to its authoritative node and that node's
// standby: the patent's "hashes the data request to determine which server
// node will be the authoritative node" (Figure 16, box 1602).
//
// A flow's row is SipHash-2-4 of its canonical key's 13 wire bytes under
// the first half of the secret, top 16 bits. Each row ranks the members by
// rendezvous (highest random weight) hashing (Thaler and Ravishankar, "Using
// name-based mappings to increase hit rates", 1998) and keeps the first two:
// the authoritative node and its standby. A member's weight in a row
// depends on nothing but the row and that member, so when a member leaves,
// only the rows it ranked first or second change, and when one joins, only
// the rows where it now ranks first or second: the minimum, about 1/N of
// the authoritative nodes (tests measure it).
//
// The weight of member m in row r is mix(R[r] ⊕ M[m]), where R[r] and M[m]
// are SipHash-2-4 of the row and of the member under the second half of the
// secret and mix is the SplitMix64 finalizer, a bijection with full
// avalanche. A SipHash per (row, member) pair is the textbook form, but at
// 64 members it costs 4.2 M SipHash calls, 56 to 113 ms on the lab's 2-core
// VM, over the 50 ms budget; this form is keyed the same way and costs one
// SipHash per row plus a multiply-xorshift per pair (docs/forward.md
// measures it).
//
// A Directory is immutable once built: the node builds a new one off the
// packet path when the committed membership changes and swaps it in
// atomically (an atomic.Pointer); readers need no lock. The zero and nil
// Directory have no members: every owner is 0.
type Directory struct {
	members  []uint16 // sorted, unique, no 0
	unfilled []uint16 // members not yet filled (fill.go), sorted; ranked after the filled ones
	rowKey   sipKey
	rows     [Rows][2]uint16 // authoritative, standby; 0 = none
	// target is the ranking with every member counted as filled: the
	// rows' owners once the unfilled members are filled. nil when it is
	// rows (no member unfilled, or none filled).
	target *[Rows][2]uint16
	auths  []int // rows each member (by its index in members) is authoritative for
}

// NewDirectory builds the directory of the given members (node ids in any
// order; 0, which is no node id, and duplicates are ignored) under key
// (DirectoryKey). Every node that builds it from the same key and the same
// set of members gets the identical table.
func NewDirectory(key [DirectoryKeyLen]byte, members []uint16) *Directory {
	return NewFillingDirectory(key, members, nil)
}

// NewFillingDirectory is NewDirectory where the members in unfilled
// (others are ignored) have not finished their fill yet (fill.go): in
// every row they rank after every filled member, so an unfilled member is
// authoritative for no row while a filled member exists, and standby only
// of rows that have a single filled member. Among themselves, filled and
// unfilled members keep their rendezvous order. With every member
// unfilled (a cluster starting, or every filled member gone) the ranking
// is NewDirectory's: nobody holds more than anyone else. Target gives
// the rows' owners as they will be once every member is filled, which
// is what a filling member fetches. Every node that builds it from the
// same key, members and unfilled set gets the identical table.
func NewFillingDirectory(key [DirectoryKeyLen]byte, members, unfilled []uint16) *Directory {
	d := &Directory{rowKey: sipKeyOf(key[:16])}
	ms := slices.Clone(members)
	slices.Sort(ms)
	ms = slices.Compact(ms)
	if len(ms) > 0 && ms[0] == 0 {
		ms = ms[1:]
	}
	d.members = ms
	if len(ms) == 0 {
		return d
	}
	d.auths = make([]int, len(ms))
	tiers := make([]uint8, len(ms))
	for i, m := range ms {
		tiers[i] = tierFilled
		if slices.Contains(unfilled, m) {
			tiers[i] = tierUnfilled
			d.unfilled = append(d.unfilled, m)
		}
	}
	split := len(d.unfilled) > 0 && len(d.unfilled) < len(ms)
	if split {
		d.target = new([Rows][2]uint16)
	}
	rank := sipKeyOf(key[16:])
	mw := make([]uint64, len(ms))
	for i, m := range ms {
		mw[i] = rank.sum4(1, m) // domain 1: members
	}
	for r := range d.rows {
		rw := rank.sum4(0, uint16(r)) // domain 0: rows
		// Filled members first (so a single filled member's standby is
		// the best unfilled one), then highest weight first; equal
		// weights (M[a] = M[b], probability 2^-64) go to the lower id,
		// as members are sorted and only a strictly better rank
		// displaces. Two top-twos at once: by (filled, weight), the
		// rows, and by weight alone, the target. With every member
		// alike (none or all unfilled) the two are the same.
		var tiered, all top2
		for i := range ms {
			w := mix64(rw ^ mw[i])
			tiered.add(ranked{w, uint16(i + 1), tiers[i]})
			if split {
				all.add(ranked{w, uint16(i + 1), tierFilled})
			}
		}
		if split {
			d.target[r] = [2]uint16{d.id(all[0].n), d.id(all[1].n)}
		}
		d.rows[r] = [2]uint16{d.id(tiered[0].n), d.id(tiered[1].n)}
		d.auths[tiered[0].n-1]++
	}
	return d
}

// id returns the member of index i-1; 0 for i = 0.
func (d *Directory) id(i uint16) uint16 {
	if i == 0 {
		return 0
	}
	return d.members[i-1]
}

// top2 keeps the two best members offered: a higher tier ranks first
// (filled before unfilled), then a higher weight; on a tie the member
// offered first stays.
type top2 [2]ranked

// ranked is a member (index + 1; 0: none) with its tier (0: none) and
// weight.
type ranked struct {
	w    uint64
	n    uint16
	tier uint8
}

// Tiers of ranked.
const (
	tierUnfilled uint8 = 1
	tierFilled   uint8 = 2
)

func (t *top2) add(r ranked) {
	switch {
	case !r.before(t[1]): // most members of most rows
	case !r.before(t[0]):
		t[1] = r
	default:
		t[1], t[0] = t[0], r
	}
}

// before reports whether r ranks strictly before o.
func (r ranked) before(o ranked) bool {
	return r.tier > o.tier || r.tier == o.tier && r.w > o.w
}

// Unfilled returns the members that have not finished their fill,
// sorted (NewFillingDirectory).
func (d *Directory) Unfilled() []uint16 {
	if d == nil {
		return nil
	}
	return slices.Clone(d.unfilled)
}

// AuthRows returns how many rows member m is authoritative for.
func (d *Directory) AuthRows(m uint16) int {
	if d == nil {
		return 0
	}
	i, ok := slices.BinarySearch(d.members, m)
	if !ok {
		return 0
	}
	return d.auths[i]
}

// TargetOwners returns the authoritative node of row and its standby
// once every member is filled: Owners when no member is unfilled.
func (d *Directory) TargetOwners(row uint16) (auth, standby uint16) {
	if d == nil {
		return 0, 0
	}
	if d.target == nil {
		o := d.rows[row]
		return o[0], o[1]
	}
	o := d.target[row]
	return o[0], o[1]
}

// mix64 is the SplitMix64 finalizer (Steele, Lea and Flood, "Fast
// splittable pseudorandom number generators", 2014; constants from
// Stafford's "Mix13"): a bijection of 64-bit words in which every input bit
// flips each output bit with probability close to 1/2.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// Members returns the directory's members, sorted.
func (d *Directory) Members() []uint16 {
	if d == nil {
		return nil
	}
	return slices.Clone(d.members)
}

// has reports whether m is a member. It does not allocate.
func (d *Directory) has(m uint16) bool {
	if d == nil {
		return false
	}
	_, ok := slices.BinarySearch(d.members, m)
	return ok
}

// Row returns the row of flow k. It does not allocate.
func (d *Directory) Row(k Key) uint16 {
	if d == nil {
		return 0
	}
	var b [keyLen]byte
	k.put(b[:])
	return uint16(d.rowKey.sum64(b[:]) >> 48)
}

// Owners returns the authoritative node of row and its standby. Standby is
// 0 when the directory has fewer than two members; both are 0 when it has
// none.
func (d *Directory) Owners(row uint16) (auth, standby uint16) {
	if d == nil {
		return 0, 0
	}
	o := d.rows[row]
	return o[0], o[1]
}

// Lookup returns the authoritative node of flow k and its standby. It does
// not allocate.
func (d *Directory) Lookup(k Key) (auth, standby uint16) {
	return d.Owners(d.Row(k))
}

// Moved returns the number of rows whose authoritative node differs between
// two directories (built from the same key): what a membership change costs
// in redirected and re-registered flows. A nil directory has no owners.
func Moved(old, new *Directory) int {
	n := 0
	for r := 0; r < Rows; r++ {
		a, _ := old.Owners(uint16(r))
		b, _ := new.Owners(uint16(r))
		if a != b {
			n++
		}
	}
	return n
}

// Owners returns the authoritative node of flow k and its standby in the
// directory installed now (SetDirectory); both 0 without symmetric routing
// (Config.Self) or before a directory. It does not allocate.
func (f *Filter) Owners(k Key) (auth, standby uint16) {
	if f.sym == nil {
		return 0, 0
	}
	return f.sym.dir.Load().Lookup(k)
}

// Directory returns the flow directory installed now (SetDirectory); nil
// without symmetric routing or before one.
func (f *Filter) Directory() *Directory {
	if f.sym == nil {
		return nil
	}
	return f.sym.dir.Load()
}
