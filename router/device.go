package router

import "net"

// The router's I/O boundary: every frame the worker loops read or write goes
// through these interfaces, batch-shaped like wireguard-go's conn.Bind and
// tun.Device. The Linux driver implements them with AF_PACKET sockets
// (link_linux.go) and the TUN device file (tun_linux.go);
// router/routertest has channel-backed fakes, so the whole per-packet path
// runs in tests without privileges (Config.Devices).
//
// Every buffer crosses the boundary with its virtio-net header inside it:
// bufs[i][offset:] is a VirtioNetHdrLen-byte header (struct virtio_net_hdr,
// PACKET_VNET_HDR / IFF_VNET_HDR) followed by the frame (links) or the IPv4
// packet (TUN). The header says whether the L4 checksum is partial and
// whether the packet is a GSO super-frame, so offloads stay on and the
// header passes through unchanged (vnet.go). The bytes before offset are
// headroom the device leaves alone: the TUN reader reads at offset
// ethHdrLen so the Ethernet header can be put in front without a copy.

// VirtioNetHdrLen is the length of the virtio-net header at the start of
// every buffer that crosses a LinkDevice or TUNDevice.
const VirtioNetHdrLen = vnetHdrLen

// FrameReader is one receive queue of a capture NIC.
type FrameReader interface {
	// Read blocks until at least one frame has arrived, then fills
	// bufs[i][offset:] with up to len(bufs) frames (virtio-net header, then
	// the Ethernet frame) and sets sizes[i] to the length of each; it
	// returns how many it filled. A frame longer than its buffer is cut to
	// it and reported with sizes[i] > len(bufs[i])-offset. len(sizes) must
	// be at least len(bufs). Read must not be called by two goroutines at
	// once. It returns net.ErrClosed after the LinkDevice's Close; other
	// errors wrap the errno (ENETDOWN while the NIC is down).
	Read(bufs [][]byte, sizes []int, offset int) (n int, err error)
}

// Waker is an optional interface of a FrameReader or TUNDevice whose Read
// can be woken without a frame: Router.Probe wakes an idle worker with it,
// so the worker answers the probe from its own goroutine (probe.go).
type Waker interface {
	// Wake makes the Read that is blocked, or else the next Read, return
	// soon without waiting for a frame: with 0, nil, or with frames that
	// were already there. Safe to call from any goroutine at any time,
	// also after Close. An error means this reader cannot be woken.
	Wake() error
}

// LinkDevice is the frame I/O of one capture NIC. Write is called
// concurrently by every receive goroutine and the timer.
type LinkDevice interface {
	// Readers returns the NIC's receive queues (Config.RxQueues of them
	// for AF_PACKET, spread by flow hash). The router reads each from its
	// own goroutine. The slice stays the same for the device's lifetime.
	Readers() []FrameReader
	// Write sends bufs[i][offset:] (virtio-net header, then the Ethernet
	// frame) in order. It stops at the first frame the device refuses and
	// returns how many it sent before it with the error; n < len(bufs)
	// only with an error, and bufs[n] is the refused frame (the caller
	// skips it and writes the rest). It returns net.ErrClosed after Close.
	Write(bufs [][]byte, offset int) (n int, err error)
	// HardwareAddr is the NIC's Ethernet address (6 bytes).
	HardwareAddr() net.HardwareAddr
	// MTU is the largest IPv4 packet the NIC sends, in bytes, without the
	// Ethernet header. The router reads it at New and again whenever it
	// may have changed: for the AF_PACKET devices on every netlink link
	// update of the NIC, for other devices when their MTUNotifier signals.
	MTU() int
	// Dropped is the number of frames the device lost since it was opened
	// because its receive queue was full (AF_PACKET PACKET_STATISTICS).
	Dropped() uint64
	// Close makes every Read and Write return net.ErrClosed.
	Close() error
}

// MTUNotifier is an optional interface of a LinkDevice whose MTU changes at
// run time (routertest.FakeLink): after each value received from
// MTUChanged, the router reads MTU again and uses it from the next packet
// on. The AF_PACKET devices do not need it: the router follows their NIC's
// netlink link updates.
type MTUNotifier interface {
	// MTUChanged returns a channel that receives a value after MTU's
	// answer changes (one value may stand for several changes). The
	// channel is the same on every call and never closes.
	MTUChanged() <-chan struct{}
}

// TUNDevice is the packet I/O of the local-delivery device: every VIP is
// configured on it, packets for owned VIPs are written to it, and the OS's
// replies from VIPs are read from it.
type TUNDevice interface {
	// Read blocks until at least one packet has arrived, then fills
	// bufs[i][offset:] with up to len(bufs) packets (virtio-net header,
	// then the IPv4 packet) and sets sizes[i] to the length of each; it
	// returns how many it filled. len(sizes) must be at least len(bufs).
	// Read must not be called by two goroutines at once. It returns
	// net.ErrClosed after Close.
	Read(bufs [][]byte, sizes []int, offset int) (n int, err error)
	// Write hands bufs[i][offset:] (virtio-net header, then the IPv4
	// packet) to the OS in order, with the same partial-failure contract as
	// LinkDevice.Write: n < len(bufs) only with an error, bufs[n] refused.
	// Write is called concurrently by every receive goroutine. It returns
	// net.ErrClosed after Close.
	Write(bufs [][]byte, offset int) (n int, err error)
	// Close makes every Read and Write return net.ErrClosed.
	Close() error
}

// Devices replaces the router's AF_PACKET sockets and TUN device (see
// Config.Devices).
type Devices struct {
	// Links has one device per Config.Links entry, in the same order.
	Links []LinkDevice
	// TUN is the local-delivery device.
	TUN TUNDevice
}
