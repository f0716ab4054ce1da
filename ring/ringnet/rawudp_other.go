//go:build !linux

package ringnet

import (
	"net/netip"
	"syscall"
)

// rawUDP4 exists on Linux only; elsewhere the net package does the I/O.
type rawUDP4 struct{}

const haveRawUDP4 = false

func newRawUDP4(syscall.RawConn) *rawUDP4 { return nil }

func (*rawUDP4) ReadFrom([]byte) (int, netip.AddrPort, error) {
	return 0, netip.AddrPort{}, syscall.ENOTSUP
}

func (*rawUDP4) WriteTo([]byte, netip.AddrPort) (int, error) { return 0, syscall.ENOTSUP }

func (*rawUDP4) TryWriteTo([]byte, netip.AddrPort) (bool, error) { return false, syscall.ENOTSUP }
