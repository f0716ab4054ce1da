package lab

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Offload names a NIC offload that SetOffload can switch (ethtool(8) names).
type Offload string

// Offloads of veth devices that matter to a packet router.
const (
	OffloadTxChecksum Offload = "tx-checksumming" // send CHECKSUM_PARTIAL frames
	OffloadSG         Offload = "scatter-gather"  // needed by TSO/GSO
	OffloadTSO        Offload = "tcp-segmentation-offload"
	OffloadGSO        Offload = "generic-segmentation-offload"
	OffloadGRO        Offload = "generic-receive-offload"
)

var offloadCmds = map[Offload][2]uint32{ // get, set (legacy ethtool ioctls)
	OffloadTxChecksum: {unix.ETHTOOL_GTXCSUM, unix.ETHTOOL_STXCSUM},
	OffloadSG:         {unix.ETHTOOL_GSG, unix.ETHTOOL_SSG},
	OffloadTSO:        {unix.ETHTOOL_GTSO, unix.ETHTOOL_STSO},
	OffloadGSO:        {unix.ETHTOOL_GGSO, unix.ETHTOOL_SGSO},
	OffloadGRO:        {unix.ETHTOOL_GGRO, unix.ETHTOOL_SGRO},
}

// SetOffload switches an offload of dev in namespace ns (SIOCETHTOOL, as
// `ethtool -K`).
func (l *Lab) SetOffload(ns, dev string, o Offload, on bool) error {
	cmds, ok := offloadCmds[o]
	if !ok {
		return fmt.Errorf("offload %q: unknown (want one of the lab.Offload* constants)", o)
	}
	v := uint32(0)
	if on {
		v = 1
	}
	return l.Do(ns, func() error {
		if _, err := ethtool(dev, cmds[1], v); err != nil {
			return fmt.Errorf("set %s %s on %s in %s: %w", o, onOff(on), dev, ns, err)
		}
		return nil
	})
}

// OffloadOn reports whether an offload of dev in namespace ns is on.
func (l *Lab) OffloadOn(ns, dev string, o Offload) (bool, error) {
	cmds, ok := offloadCmds[o]
	if !ok {
		return false, fmt.Errorf("offload %q: unknown", o)
	}
	var on bool
	err := l.Do(ns, func() error {
		v, err := ethtool(dev, cmds[0], 0)
		if err != nil {
			return fmt.Errorf("get %s of %s in %s: %w", o, dev, ns, err)
		}
		on = v != 0
		return nil
	})
	return on, err
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// ethtool issues one legacy ethtool_value ioctl on dev in the calling
// thread's namespace and returns the value the kernel left in it.
func ethtool(dev string, cmd, data uint32) (uint32, error) {
	if len(dev) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("interface name %q too long", dev)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	val := struct{ cmd, data uint32 }{cmd, data}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte // rest of the ifreq union
	}
	copy(ifr.name[:], dev)
	ifr.data = unsafe.Pointer(&val)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&val)
	if errno != 0 {
		return 0, errno
	}
	return val.data, nil
}
