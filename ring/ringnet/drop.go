package ringnet

import "sync/atomic"

// DropReason says why a received datagram was not handed to the core. The
// reasons are exported as counters (Stats.Drops) for the node's metrics.
type DropReason uint8

// The drop reasons, in the order the receive path checks them.
const (
	DropNone          DropReason = iota // not dropped
	DropShort                           // shorter than header + tag
	DropOversize                        // longer than MaxDatagram
	DropVersion                         // unknown format version
	DropMalformed                       // reserved bytes set or counter 0
	DropWrongPath                       // header path differs from the socket it arrived on
	DropNotForUs                        // receiver id is not this node
	DropUnknownSender                   // sender not in the node map, this node itself, or source address not the sender's on this path
	DropStaleBoot                       // sender boot id older than the one already accepted
	DropReplay                          // counter already seen or older than the replay window
	DropAuth                            // authentication failed: forged, corrupted or another key
	DropCoreReject                      // authentic, but the core's Step returned an error
	DropBootLimited                     // claims a new boot of a known sender less than deriveEvery after the last derivation for it
	DropNotFresh                        // authentic, but does not echo this node's current boot: sent to an earlier boot of this node (a replay, or in flight across its restart) or before the sender heard of this boot
	NumDropReasons                      // number of reasons, for arrays
)

var dropNames = [NumDropReasons]string{
	"none", "short", "oversize", "version", "malformed", "wrong_path", "not_for_us",
	"unknown_sender", "stale_boot", "replay", "auth", "core_reject", "boot_limited",
	"not_fresh",
}

// String returns the reason's metric label, e.g. "replay".
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// Stats are the driver's counters since New. All are monotonic.
type Stats struct {
	RxDatagrams   uint64                 // authentic datagrams handed to the core
	RxBytes       uint64                 // their wire bytes (header, payload, tag)
	TxDatagrams   uint64                 // datagrams written
	TxBytes       uint64                 // their wire bytes
	TxErrors      uint64                 // writes that failed (or packets the core addressed to an unknown node or path)
	TxDropped     uint64                 // datagrams dropped because their path had SendQueue waiting (its socket took nothing)
	Drops         [NumDropReasons]uint64 // received datagrams dropped, by reason
	PeerRestarts  uint64                 // a known peer was seen with a newer boot id
	PeerRollbacks uint64                 // a peer silent for StaleBoot came back with an older boot id (Config.StaleBoot)
	EventsDropped uint64                 // core events dropped because nobody read Events()
	// AnnouncesSent counts the announces this driver sent: one per peer
	// and path at Run, and the answers to datagrams that were not fresh.
	AnnouncesSent uint64
	// AnnouncesReceived counts authentic announces received (a peer
	// telling its boot); they are not datagrams for the core.
	AnnouncesReceived uint64
	// Resent counts core packets sent again, echoing a peer's boot just
	// learnt, because they went out before (they echoed no boot or an
	// earlier one of that peer).
	Resent uint64
}

// Dropped returns the total of all drop counters.
func (s Stats) Dropped() uint64 {
	var t uint64
	for _, v := range s.Drops {
		t += v
	}
	return t
}

type counters struct {
	rxDatagrams, rxBytes atomic.Uint64
	txDatagrams, txBytes atomic.Uint64
	txErrors, txDropped  atomic.Uint64
	drops                [NumDropReasons]atomic.Uint64
	peerRestarts         atomic.Uint64
	peerRollbacks        atomic.Uint64
	eventsDropped        atomic.Uint64
	announcesSent        atomic.Uint64
	announcesReceived    atomic.Uint64
	resent               atomic.Uint64
}

func (c *counters) snapshot() Stats {
	s := Stats{
		RxDatagrams:   c.rxDatagrams.Load(),
		RxBytes:       c.rxBytes.Load(),
		TxDatagrams:   c.txDatagrams.Load(),
		TxBytes:       c.txBytes.Load(),
		TxErrors:      c.txErrors.Load(),
		TxDropped:     c.txDropped.Load(),
		PeerRestarts:  c.peerRestarts.Load(),
		PeerRollbacks: c.peerRollbacks.Load(),
		EventsDropped: c.eventsDropped.Load(),

		AnnouncesSent:     c.announcesSent.Load(),
		AnnouncesReceived: c.announcesReceived.Load(),
		Resent:            c.resent.Load(),
	}
	for i := range s.Drops {
		s.Drops[i] = c.drops[i].Load()
	}
	return s
}
