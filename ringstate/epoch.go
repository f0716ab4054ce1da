package ringstate

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/vipstate"
)

// KindConfigEpoch is carriage kind 3: the cluster's configuration epoch
// (docs/operating.md, "Reload").
const KindConfigEpoch uint16 = 3

// Proposal kinds of the config epoch (4 is ProposeSwitch).
const (
	ProposeConfig uint16 = 3 // a reload: a ConfigChange
	ProposeFile   uint16 = 5 // the proposer's file hash: a FileHash's 6 bytes
)

// FileHashLen is how much of a file's hash the token carries per node.
const FileHashLen = 6

// FileHash is one node's report of its config file: the first bytes of the
// hash of its cluster-wide part (config.Hash), as it last read it.
type FileHash struct {
	Node ring.NodeID
	Hash [FileHashLen]byte
}

// MaxConfigContent caps the shared configuration carried in an epoch or a
// change (config.MaxConfigSize is the file's cap; the shared part is
// smaller).
const MaxConfigContent = 1 << 20

// Epoch is carriage kind 3: the version of the cluster-wide configuration
// every member runs. Only a Holder that applies a ConfigChange raises it,
// so every node applies an epoch at the same point of the token's way:
// when it commits the token that first carries it, together with the VIP
// table the change produced. Content, the shared part of the file
// (config.Config.Shared), rides on the token until every member has
// committed it: each member's Holder adds itself to Seen at its turn, and
// the first Holder that finds every member in Seen at the start of its
// turn strips Content (and Seen), so an epoch costs the ring's hops its
// bytes for about one rotation. Epoch 0 (or no carriage) means the files
// nodes started with; the carriage then exists only for Files.
//
// Files are the file hashes the members report (ProposeFile), so that
// every node's status shows every node's file.
//
// DropVIPs are the VIPs a reload with --drop-flows removed: every node
// drops the flows through them when it applies the epoch. They ride with
// Content and go with it. Version 2 is version 1 with them; an epoch
// without them is encoded as version 1, as before they existed.
//
//	version u8 (1 or 2) | epoch u64 |
//	(epoch > 0 only:) hash [32]byte | proposer u16 |
//	  balance: enabled u8 | threshold u32 | min_rate u64 | cooldown u32 |
//	  (version 2 only:) drop count uvarint (≥ 1) | IPv4 [4]byte × count, increasing |
//	seen length uvarint | seen (a NodeSet, empty when length 0) |
//	files count uvarint | (node uvarint | hash [6]byte) × count, nodes increasing |
//	content length uvarint | content
type Epoch struct {
	Epoch    uint64
	Hash     [32]byte // SHA-256 of the content (config.Hash)
	Proposer ring.NodeID
	// Balance is the balancing every Holder uses from this epoch on
	// (Config.Balance until the first epoch).
	Balance vipstate.BalanceConfig
	Content []byte // nil once stripped
	// Seen are the members that committed the token with Content.
	Seen NodeSet
	// Files are the members' file hashes, by node.
	Files []FileHash
	// DropVIPs: the VIPs whose flows every node drops as it applies this
	// epoch (a reload with --drop-flows); nil once Content is stripped.
	DropVIPs []netip.Addr
}

// MaxDropVIPs caps the VIPs one reload drops the flows of.
const MaxDropVIPs = 4096

const (
	epochHead  = 1 + 8                              // version and epoch
	epochFixed = epochHead + 32 + 2 + 1 + 4 + 8 + 4 // up to the seen length, epoch > 0
)

var errEpoch = errors.New("ringstate: malformed config epoch")

// MarshalBinary encodes e.
func (e Epoch) MarshalBinary() ([]byte, error) {
	if len(e.Content) > MaxConfigContent {
		return nil, fmt.Errorf("ringstate: config epoch of %d bytes, more than %d", len(e.Content), MaxConfigContent)
	}
	if len(e.DropVIPs) > 0 && e.Epoch == 0 {
		return nil, errors.New("ringstate: flows to drop in epoch 0")
	}
	b := make([]byte, 0, epochFixed+binary.MaxVarintLen64+len(e.Content))
	b = append(b, dropVersion(e.DropVIPs))
	b = binary.BigEndian.AppendUint64(b, e.Epoch)
	if e.Epoch > 0 { // epoch 0 carries only file hashes: 51 bytes less on every hop
		b = append(b, e.Hash[:]...)
		b = binary.BigEndian.AppendUint16(b, uint16(e.Proposer))
		b = appendBalance(b, e.Balance)
		var err error
		if b, err = appendDrop(b, e.DropVIPs); err != nil {
			return nil, err
		}
	}
	var seen []byte
	if len(e.Seen) > 0 {
		var err error
		if seen, err = e.Seen.MarshalBinary(); err != nil {
			return nil, err
		}
	}
	b = binary.AppendUvarint(b, uint64(len(seen)))
	b = append(b, seen...)
	b = binary.AppendUvarint(b, uint64(len(e.Files)))
	for i, f := range e.Files {
		if f.Node == 0 || int(f.Node) > vipstate.MaxNodes || (i > 0 && f.Node <= e.Files[i-1].Node) {
			return nil, fmt.Errorf("ringstate: file hash of node %d out of order", f.Node)
		}
		b = binary.AppendUvarint(b, uint64(f.Node))
		b = append(b, f.Hash[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Content)))
	return append(b, e.Content...), nil
}

// UnmarshalBinary decodes an Epoch, replacing *e. Content, when present,
// must hash to Hash.
func (e *Epoch) UnmarshalBinary(b []byte) error {
	if len(b) < epochHead+3 {
		return io.ErrUnexpectedEOF
	}
	version := b[0]
	if version != 1 && version != 2 {
		return fmt.Errorf("%w: version %d", errEpoch, b[0])
	}
	v := Epoch{Epoch: binary.BigEndian.Uint64(b[1:])}
	if v.Epoch > 0 {
		if len(b) < epochFixed+3 {
			return io.ErrUnexpectedEOF
		}
		copy(v.Hash[:], b[9:41])
		v.Proposer = ring.NodeID(binary.BigEndian.Uint16(b[41:]))
		if b[43] > 1 {
			return fmt.Errorf("%w: balance flag %d", errEpoch, b[43])
		}
		v.Balance = readBalance(b[43:])
		b = b[epochFixed:]
		if version == 2 {
			var err error
			if v.DropVIPs, b, err = readDrop(b); err != nil {
				return fmt.Errorf("%w: %v", errEpoch, err)
			}
		}
	} else {
		if version != 1 {
			return fmt.Errorf("%w: version %d in epoch 0", errEpoch, version)
		}
		b = b[epochHead:]
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || k != uvarintLen(n) || n > uint64(len(b)-k) || n > 4*vipstate.MaxNodes {
		return fmt.Errorf("%w: seen", errEpoch)
	}
	if n > 0 {
		if err := v.Seen.UnmarshalBinary(b[k : k+int(n)]); err != nil || len(v.Seen) == 0 {
			return fmt.Errorf("%w: seen: %v", errEpoch, err)
		}
	}
	b = b[k+int(n):]
	count, k := binary.Uvarint(b)
	if k <= 0 || k != uvarintLen(count) || count > vipstate.MaxNodes || count*(1+FileHashLen) > uint64(len(b)) {
		return fmt.Errorf("%w: files", errEpoch)
	}
	b = b[k:]
	for range count {
		node, k := binary.Uvarint(b)
		if k <= 0 || k != uvarintLen(node) || node == 0 || node > vipstate.MaxNodes || len(b) < k+FileHashLen ||
			(len(v.Files) > 0 && ring.NodeID(node) <= v.Files[len(v.Files)-1].Node) {
			return fmt.Errorf("%w: file hash of node %d", errEpoch, node)
		}
		f := FileHash{Node: ring.NodeID(node)}
		copy(f.Hash[:], b[k:])
		v.Files = append(v.Files, f)
		b = b[k+FileHashLen:]
	}
	content, err := readBytes(b, MaxConfigContent)
	if err != nil {
		return fmt.Errorf("%w: %v", errEpoch, err)
	}
	if len(content) > 0 {
		if sha256.Sum256(content) != v.Hash {
			return fmt.Errorf("%w: content does not match its hash", errEpoch)
		}
		v.Content = content
	}
	*e = v
	return nil
}

func appendBalance(b []byte, c vipstate.BalanceConfig) []byte {
	on := byte(0)
	if c.Enabled {
		on = 1
	}
	b = append(b, on)
	b = binary.BigEndian.AppendUint32(b, c.Threshold)
	b = binary.BigEndian.AppendUint64(b, c.MinRate)
	return binary.BigEndian.AppendUint32(b, c.Cooldown)
}

// readBalance reads what appendBalance wrote (17 bytes, checked by the
// caller). Any value is a valid BalanceConfig.
func readBalance(b []byte) vipstate.BalanceConfig {
	return vipstate.BalanceConfig{Enabled: b[0] == 1, Threshold: binary.BigEndian.Uint32(b[1:]),
		MinRate: binary.BigEndian.Uint64(b[5:]), Cooldown: binary.BigEndian.Uint32(b[13:])}
}

// dropVersion is the encoding's version: 2 with VIPs to drop the flows of,
// else 1.
func dropVersion(drop []netip.Addr) byte {
	if len(drop) > 0 {
		return 2
	}
	return 1
}

// appendDrop appends a non-empty list of VIPs to drop the flows of (count
// and addresses, which must be IPv4 and increasing); an empty one appends
// nothing (version 1).
func appendDrop(b []byte, drop []netip.Addr) ([]byte, error) {
	if len(drop) == 0 {
		return b, nil
	}
	if len(drop) > MaxDropVIPs {
		return nil, fmt.Errorf("ringstate: flows of %d VIPs to drop, at most %d", len(drop), MaxDropVIPs)
	}
	b = binary.AppendUvarint(b, uint64(len(drop)))
	for i, a := range drop {
		if !a.Is4() || (i > 0 && a.Compare(drop[i-1]) <= 0) {
			return nil, fmt.Errorf("ringstate: VIPs to drop the flows of: %v is not IPv4 or out of order", a)
		}
		a4 := a.As4()
		b = append(b, a4[:]...)
	}
	return b, nil
}

// readDrop reads what appendDrop wrote (version 2: at least one VIP) and
// returns the rest of b.
func readDrop(b []byte) ([]netip.Addr, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || k != uvarintLen(n) || n == 0 || n > MaxDropVIPs || n*4 > uint64(len(b)-k) {
		return nil, nil, errors.New("VIPs to drop the flows of")
	}
	b = b[k:]
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte(b[4*i:]))
		if i > 0 && out[i].Compare(out[i-1]) <= 0 {
			return nil, nil, errors.New("VIPs to drop the flows of out of order")
		}
	}
	return out, b[4*n:], nil
}

// readBytes reads a uvarint length and that many bytes, which must end b.
func readBytes(b []byte, limit int) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || k != uvarintLen(n) {
		return nil, errors.New("length")
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("%d bytes, more than %d", n, limit)
	}
	b = b[k:]
	if uint64(len(b)) < n {
		return nil, io.ErrUnexpectedEOF
	}
	if uint64(len(b)) != n {
		return nil, fmt.Errorf("%d bytes after the content", uint64(len(b))-n)
	}
	if n == 0 {
		return nil, nil
	}
	return b[:n:n], nil
}

// CurrentEpoch decodes the epoch carried in cs; ok is false when there is
// none (epoch 0) or it does not decode.
func CurrentEpoch(cs []ring.Carriage) (e Epoch, ok bool) {
	b, found := carriage(cs, KindConfigEpoch)
	return e, found && e.UnmarshalBinary(b) == nil
}

// ConfigChange is a reload's proposal (kind ProposeConfig): the new shared
// configuration and the VIP tables it implies, proposed by the node that
// re-read its file.
//
//	version u8 (1 or 2) | base [32]byte | balance (17 bytes, as in Epoch) |
//	(version 2 only:) drop VIPs (as in Epoch) |
//	content (uvarint length | bytes) | from (idem) | desired (idem)
type ConfigChange struct {
	// Base is the hash of the epoch the proposer ran when it read its
	// file; the change applies only on top of that epoch (two reloads
	// racing: the second is refused, or is a no-op when it carries the
	// same content).
	Base    [32]byte
	Balance vipstate.BalanceConfig
	Content []byte         // the new shared configuration
	From    vipstate.Table // the table the proposer's running configuration builds
	Desired vipstate.Table // the table the new configuration builds
	// DropVIPs: --drop-flows, the VIPs the change removes (sorted); the
	// epoch carries them to every node.
	DropVIPs []netip.Addr
}

// MarshalBinary encodes c.
func (c ConfigChange) MarshalBinary() ([]byte, error) {
	if len(c.Content) == 0 || len(c.Content) > MaxConfigContent {
		return nil, fmt.Errorf("ringstate: config change of %d bytes, want 1 to %d", len(c.Content), MaxConfigContent)
	}
	b := append([]byte{dropVersion(c.DropVIPs)}, c.Base[:]...)
	b = appendBalance(b, c.Balance)
	b, err := appendDrop(b, c.DropVIPs)
	if err != nil {
		return nil, err
	}
	b = binary.AppendUvarint(b, uint64(len(c.Content)))
	b = append(b, c.Content...)
	for _, t := range []vipstate.Table{c.From, c.Desired} {
		tb, err := t.MarshalBinary()
		if err != nil {
			return nil, err
		}
		b = binary.AppendUvarint(b, uint64(len(tb)))
		b = append(b, tb...)
	}
	return b, nil
}

// UnmarshalBinary decodes a ConfigChange, replacing *c.
func (c *ConfigChange) UnmarshalBinary(b []byte) error {
	if len(b) < 1+32+17 {
		return io.ErrUnexpectedEOF
	}
	version := b[0]
	if version != 1 && version != 2 {
		return fmt.Errorf("%w: config change version %d", errProposal, b[0])
	}
	if b[33] > 1 {
		return fmt.Errorf("%w: balance flag %d", errProposal, b[33])
	}
	v := ConfigChange{Balance: readBalance(b[33:])}
	copy(v.Base[:], b[1:33])
	b = b[50:]
	if version == 2 {
		var err error
		if v.DropVIPs, b, err = readDrop(b); err != nil {
			return fmt.Errorf("%w: config change: %v", errProposal, err)
		}
	}
	var parts [3][]byte
	for i := range parts {
		n, k := binary.Uvarint(b)
		if k <= 0 || k != uvarintLen(n) || n > MaxConfigContent || n > uint64(len(b)-k) {
			return fmt.Errorf("%w: config change part %d", errProposal, i)
		}
		parts[i], b = b[k:k+int(n)], b[k+int(n):]
	}
	if len(b) != 0 || len(parts[0]) == 0 {
		return fmt.Errorf("%w: config change of the wrong length", errProposal)
	}
	v.Content = parts[0]
	if err := v.From.UnmarshalBinary(parts[1]); err != nil {
		return fmt.Errorf("%w: from table: %v", errProposal, err)
	}
	if err := v.Desired.UnmarshalBinary(parts[2]); err != nil {
		return fmt.Errorf("%w: desired table: %v", errProposal, err)
	}
	*c = v
	return nil
}

// ErrStaleConfig refuses a reload whose base is not the cluster's epoch.
var ErrStaleConfig = errors.New("the cluster's configuration changed since this node read its file; reload again")

// applyConfig applies a ConfigChange on top of epoch cur (ok: present) and
// table t, proposed by self. It returns the new epoch and table, or cur
// and t unchanged when the change is already the cluster's.
func applyConfig(p ring.Proposal, self ring.NodeID, cur Epoch, ok bool, t vipstate.Table) (Epoch, vipstate.Table, error) {
	var c ConfigChange
	if err := c.UnmarshalBinary(p.Data); err != nil {
		return cur, t, err
	}
	h := sha256.Sum256(c.Content)
	ok = ok && cur.Epoch > 0 // epoch 0: the files nodes started with, whatever they were
	if ok && h == cur.Hash {
		if len(c.DropVIPs) == 0 || (len(cur.Content) > 0 && slices.Equal(c.DropVIPs, cur.DropVIPs)) {
			return cur, t, nil // every node that reloads the same file proposes it
		}
		// The same file reloaded by another node won the race without
		// --drop-flows: a new epoch of the same content carries the
		// flows to drop (nodes apply the same configuration again).
		return Epoch{Epoch: cur.Epoch + 1, Hash: h, Proposer: self, Balance: cur.Balance, Content: c.Content,
			Files: cur.Files, DropVIPs: c.DropVIPs}, t, nil
	}
	if ok && c.Base != cur.Hash {
		return cur, t, fmt.Errorf("%w (the cluster is at epoch %d, %x)", ErrStaleConfig, cur.Epoch, cur.Hash[:6])
	}
	nt, err := t.Reconfigure(c.From, c.Desired)
	if err != nil {
		return cur, t, fmt.Errorf("the new VIP table: %w", err)
	}
	return Epoch{Epoch: cur.Epoch + 1, Hash: h, Proposer: self, Balance: c.Balance, Content: c.Content, Files: cur.Files,
		DropVIPs: c.DropVIPs}, nt, nil
}

// withFile returns files with node's hash set, sorted, without touching
// files' array.
func withFile(files []FileHash, f FileHash) []FileHash {
	i, found := slices.BinarySearchFunc(files, f.Node, func(x FileHash, n ring.NodeID) int { return int(x.Node) - int(n) })
	out := slices.Clone(files)
	if found {
		out[i] = f
		return out
	}
	return slices.Insert(out, i, f)
}

// FileOf returns node's file hash in e, if it reported one.
func (e Epoch) FileOf(node ring.NodeID) (h [FileHashLen]byte, ok bool) {
	for _, f := range e.Files {
		if f.Node == node {
			return f.Hash, true
		}
	}
	return h, false
}

// carried returns e as this turn of self passes it on: Content stripped
// once every member had committed it before this turn, else self added to
// Seen (self commits this turn). fresh: this turn made the epoch, whose
// Seen starts with self.
func (e Epoch) carried(members []ring.NodeID, self ring.NodeID, fresh bool) Epoch {
	if len(e.Content) == 0 {
		e.Seen, e.DropVIPs = nil, nil
		return e
	}
	if fresh {
		e.Seen = nil
	} else if len(members) > 0 {
		all := true
		for _, m := range members {
			if _, found := slices.BinarySearch(e.Seen, vipstate.Node(m)); !found {
				all = false
				break
			}
		}
		if all {
			e.Content, e.Seen, e.DropVIPs = nil, nil, nil
			return e
		}
	}
	if slices.Contains(members, self) {
		e.Seen = e.Seen.with(vipstate.Node(self), true)
	}
	return e
}

// ProposeFileHash encodes this node's file hash report (the first
// FileHashLen bytes of config.Hash) as a ring proposal.
func ProposeFileHash(h [32]byte) (kind uint16, data []byte) {
	return ProposeFile, append([]byte{1}, h[:FileHashLen]...)
}
