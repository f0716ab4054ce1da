// Package ringnet is the driver of the ring protocol core (package ring): it
// runs one core over UDP on every subnet the nodes share, ticks it, and
// authenticates every datagram with the cluster key.
//
// # Data flow
//
//	 path 0 socket        path 1 socket          (one per subnet, bound to this
//	(203.0.113.1:P)     (198.51.100.1:P)          node's primary address only)
//	       │                   │
//	 receive goroutine   receive goroutine        size check, header check, source
//	       │                   │                  check, replay window, AES-GCM open,
//	       │                   │                  freshness (the echo of this boot)
//	       └────────┬──────────┘
//	                ▼
//	   core lock: one input at a time, on the goroutine that has it
//	     datagram (receive goroutine) → core.Step
//	     timer    (Run goroutine)     → core.Tick
//	     Do(fn)   (caller goroutine)  → fn(core)
//	   then core.Ready(): Packets → numbered, queued on Packet.Path's
//	                                send queue (bounded, excess counted)
//	                      State   → States() (changes only, latest wins,
//	                                never blocks)
//	                      Events  → Events() (bounded, excess counted)
//	                      Left    → Left() closed, Run returns
//	   then the timer is set for the core's next tick that may act
//	                │
//	   lock released; per path, one goroutine at a time: seal → socket →
//	   peer's address on that path, in queue order. The same goroutine
//	   while the socket takes datagrams at once; the path's sender
//	   goroutine when it would wait (a full send buffer), so that a stuck
//	   path holds up nothing but its own queue.
//
// Path i is subnet i: this node binds Config.Nodes[Self-1][i] and sends a
// path-i datagram to Config.Nodes[To-1][i]. The core decides which paths a
// packet goes on (a message's first try on one path, its resends on all of
// them); a hop succeeds if any path delivers.
//
// The core lock is never held across a system call: a receive goroutine
// or the timer waiting for it waits only for the core's own work and the
// queueing of its output, never for a socket. A path whose
// socket stays full fills its queue (SendQueue) and then drops, counted in
// Stats.TxDropped; the core's resends go over every path, so the other
// paths carry the ring meanwhile.
//
// New checks the config and binds the sockets (so an address missing from
// the host fails at start with an error naming the config entry) but starts
// no goroutine. Run(ctx) runs until ctx ends, Close is called or the core has
// left, and returns only after every goroutine it started (a receive and a
// sender goroutine per path) has stopped.
// Close stops Run and waits. Other goroutines (the node daemon's admin
// requests, monitors) reach the core through Do.
//
// # Wakeups
//
// The driver is built to wake the process as little as the protocol allows,
// because on a virtual machine each wakeup of a thread costs tens of
// microseconds, far more than the protocol's own work (docs/ring.md, "CPU
// per node"). A token hop costs each node three wakeups: the token arriving,
// the end of its hold, and the ack of its pass. To keep it at that:
//   - the goroutine the poller wakes for a datagram steps the core itself,
//     under the core lock (a channel of capacity 1), instead of handing the
//     datagram to another goroutine, which would wake a second thread;
//     and it writes the output itself after releasing the lock, with a
//     write that does not wait (TryWriter): the path's sender goroutine is
//     woken only when a socket is full;
//   - IPv4 sockets are read and written with non-blocking raw system calls
//     (rawUDP4): a counted syscall.Syscall wakes the runtime's monitor
//     thread (sysmon) whenever it sleeps;
//   - the core's timers wake the Run goroutine through a timerfd that the
//     runtime's poller watches (Config.Timer, TimerOS): re-arming a
//     time.Timer from a running goroutine makes the runtime wake an idle
//     thread, and its firing hands off once more;
//   - a committed state that differs from the last one offered only in its
//     sequence number (every hop commits one) is not offered on States(),
//     so the reader does not wake for nothing; Config.SameState widens that
//     (the node passes ringstate.SameService, which also ignores the VIP
//     table's rotation counter);
//   - the driver sleeps through ticks the core promises idle (Idler).
//
// # Ticks
//
// The core's timers count ticks of Config.Tick (2 ms). Ticks are due on a
// fixed grid from the start, on the driver's clock, Config.Now (every
// instant the driver acts on comes from it; the system's timers only
// measure how long to sleep until the next one). A core that implements Idler says how many
// coming ticks would only advance its clock; the driver sleeps through them
// and delivers them in a batch before the next input (so Step always sees
// a clock in step with wall time) or together with the next tick that may
// act. A core without Idler gets a wakeup per tick. Either way a wakeup
// delivers at most one tick that may act: after a stall (GC, a descheduled
// VM) the missed acting ticks are dropped, as time.Ticker drops them, so
// the core's timeouts stretch rather than fire in a burst before the
// datagrams that arrived meanwhile (often the awaited acks) are read.
//
// # Datagram format
//
// Every datagram is one core payload (at most ring.MaxPacket = 1200 bytes)
// or an announce (no payload), sealed with AES-256-GCM. Integers are
// big-endian.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+---------------+---------------+-------------------------------+ ─┐
//	|  version = 3  |  path index   |        sender NodeID          |  │
//	+---------------+---------------+---------------+---------------+  │
//	|       receiver NodeID         |     kind      | reserved (0)  |  │ header:
//	+-------------------------------+---------------+---------------+  │ 40 bytes,
//	|              boot time and 16 random bits (64 bits)           |  │ cleartext,
//	|                                                               |  │ authenticated
//	+---------------------------------------------------------------+  │ (GCM additional
//	|         boot salt: 64 random bits, never 0 (the sender's)     |  │ data)
//	|                                                               |  │
//	+---------------------------------------------------------------+  │
//	|                  packet counter (64 bits, ≥ 1)                |  │
//	|                                                               |  │
//	+---------------------------------------------------------------+  │
//	|   echo: the receiver's boot salt as the sender last learnt it |  │
//	|         (0: the sender has heard from no boot of it)          |  │
//	+---------------------------------------------------------------+ ─┘
//	|                                                               |
//	:  core payload, encrypted (0..1200 bytes; none in an announce) :
//	|                                                               |
//	+---------------------------------------------------------------+
//	|                 GCM tag (128 bits)                            |
//	+---------------------------------------------------------------+
//
// Kind 0 carries a core payload, kind 1 is an announce (see Freshness).
// Overhead is 56 bytes (plus 28 of IPv4 and UDP), so the largest datagram
// is 1256 bytes and an IPv4 packet 1284 bytes (1304 over IPv6): it needs a
// path MTU of 1304, which any Ethernet or common tunnel has.
// Version 2 added the salt (version 1 had a 24-byte header and 16 random
// bits per boot), version 3 the kind and the echo; the versions do not
// talk to each other (DropVersion), so an upgrade across them restarts
// every node.
//
// Keys and nonces: the sender derives a key per boot,
// K = HKDF-SHA256(cluster key, info = "ringway ring datagram v3" ‖ sender ‖
// boot time ‖ salt), and uses the 96-bit nonce 0x00000000 ‖ counter. The counter
// starts at 1 on every boot and grows by one per datagram (all peers and
// paths share it), so a nonce is never reused under a key: a new boot is a
// new key, and two senders never share a key because the sender id is in
// the derivation. The boot id is the boot time in milliseconds since the
// Unix epoch shifted left 16 bits, or-ed with 16 random bits, so later boots
// have larger ids, plus the salt, 64 random bits drawn at boot: a boot's
// key and nonces never repeat and cannot be predicted, whatever the clock
// does (two boots in one millisecond once had only 16 bits between them).
// Boots are ordered by boot time, then salt.
//
// # Freshness
//
// A node that restarts has forgotten every peer's boot and counters, and
// its core has forgotten every ring: without more, it would take a token
// recorded during its previous boot and replayed to it for the live ring
// (the security review saw a restarted node commit an old token, and so
// announce its old VIP table by GARP, after 17 replayed datagrams). So a
// datagram reaches the core only if it proves it was sent to the
// receiver's current boot: its header echoes the receiver's salt, 64
// random bits drawn at boot that nobody can know before the receiver has
// sent a datagram from that boot.
//
//	node A (boot a, restarted)                     node B (boot b)
//	Run: announce, echo 0        ──────────────▶   not fresh: learn a,
//	                                               answer (≤ 1 per tick)
//	learn b (fresh: echoes a)    ◀──────────────   announce, echo a
//	core hello, echo b           ──────────────▶   fresh: core.Step
//	                             ◀──────────────   ack, token...: echo a
//
// Every datagram echoes the receiver's salt as the sender last learnt it
// (from any authentic datagram of the receiver), or 0. A driver announces
// its boot to every peer on every path when Run starts, before its core
// sends anything, and answers a datagram that does not echo its current
// boot with an announce (at most one per sender per tick; an announce is
// answered too, which ends at the first fresh one). An authentic datagram
// that does not echo the receiver's current boot still teaches the
// sender's boot and uses up its counter, but goes no further: dropped as
// not_fresh (announces are only counted, as Stats.AnnouncesReceived) and
// logged at info at most once per 10 s with the count. Around a restart a
// few are normal: the peers' datagrams to the previous boot still in
// flight, and a core message that raced the announces. The driver keeps
// the last 8 core packets to each peer and, when an authentic datagram
// teaches it that peer's boot (a first one, a restart), sends again those
// of the last 8 ticks that echoed something else (Stats.Resent), so the
// handshake costs one round trip rather than a core resend timeout. A
// restarted node rejoins as fast as before on a LAN, and up to one round trip
// later when the round trip exceeds a tick (TestRingRestartRejoinTime),
// and a replay of its peers' datagrams to its previous boot moves nothing
// (TestRingRestartedNodeRefusesReplay).
//
// # Receive checks, in order (each failure is a counted DropReason)
//
//  1. length: shorter than 56 bytes → short; longer than 1256 → oversize.
//     The read buffer is 1257 bytes, so nothing larger is ever parsed.
//  2. header: version, known kind, reserved byte zero, counter ≠ 0,
//     salt ≠ 0, an announce has no payload, path byte = the socket it came
//     in on, receiver = this node, sender in the node map, not this node,
//     and the UDP source = the sender's address on that path.
//  3. boot: the sender's current boot → replay window (1024 counters,
//     RFC 6479 style); a larger boot id → a restart: decrypt with the new
//     boot's key and, if authentic, adopt it with a fresh window (for a
//     sender already known, at most one such derivation per 50 ms, else
//     boot_limited: a forged "new boot" costs a derivation, 17× a plain
//     forgery); a smaller
//     boot id → stale_boot, unless the sender has been silent for
//     Config.StaleBoot (its clock went back across a restart).
//  4. AES-GCM open, in place → auth on failure. Only now does the window
//     move or the boot change: a forgery changes no state.
//  5. freshness: the echo is not this boot's salt → not_fresh (answered
//     with an announce); an announce ends here too. The rest goes to
//     core.Step.
//
// # Security properties
//
// An attacker on the wire without the cluster key
//   - cannot make a node accept a datagram it did not get from a node with
//     the key (forgeries, bit flips, truncations and header edits fail the
//     tag: GCM authenticates header and payload);
//   - cannot replay a datagram: within a boot the window drops counters
//     seen or older than the window; datagrams of an earlier boot are
//     dropped once the receiver has seen the newer boot; a receiver that
//     restarted, and so forgot the boots and windows, steps only datagrams
//     that echo its new boot, which none sent before it started does;
//   - cannot redirect a datagram to another node, another path or
//     impersonate another sender: receiver, path and sender are
//     authenticated, and the per-boot key is bound to the sender id;
//   - cannot read the token (VIP table, loads): the payload is encrypted;
//   - cannot exhaust memory: buffers (one per receive goroutine), the
//     send queues and the event queue are bounded; per-peer state is one
//     entry per node-map node; nor make a node send more than one announce
//     per peer per tick by replaying.
//
// One trade-off is deliberate: boot ids come from the wall clock, so a node
// whose clock went back across a restart (no RTC battery, an NTP step)
// would be locked out by its peers for good. A peer therefore believes an
// older boot id once the sender's current boot has been silent for
// Config.StaleBoot (5 s; a reboot takes longer), counted as
// Stats.PeerRollbacks and logged as a warning. While a node is down, an
// attacker holding datagrams captured from one of its earlier boots can use
// that to replay them once each to a peer that has not restarted since
// they were sent (to any other, they are not fresh): the core refuses
// their old tokens (ring id and sequence numbers, which that peer has seen
// pass), but old hellos can make the ring try to add the dead node, which
// fails at the next hop (one ack budget, tens of ms).
//
// It can: drop, delay or reorder datagrams (the core's acks, resends over
// every path and 911 recovery handle that; enough loss looks like a crash);
// flood the sockets so the kernel drops real datagrams when a socket's
// receive buffer is full (the receive goroutines read as fast as the core
// steps); see the header (who talks to whom, the boot times, the
// traffic rate and sizes). Every node that has the cluster key is trusted
// completely: a compromised node can say anything the protocol lets a
// member say.
//
// Counters for all of this are in Stats, for the node's /metrics.
package ringnet
