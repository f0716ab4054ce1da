//go:build !linux

package router

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"
)

var errNotLinux = errors.New("router: the data plane needs Linux (AF_PACKET, TUN, netlink)")

// Router is the data plane of one node; on this platform New always fails.
type Router struct{}

// New fails: the data plane needs Linux.
func New(Config) (*Router, error) { return nil, errNotLinux }

// SetOwned does nothing on this platform.
func (*Router) SetOwned([]netip.Addr) (acquired, released []netip.Addr) { return nil, nil }

// Announce does nothing on this platform.
func (*Router) Announce([]netip.Addr) {}

// SetGARP does nothing on this platform.
func (*Router) SetGARP(int, time.Duration, time.Duration, float64) error { return errNotLinux }

// SetVIPs does nothing on this platform.
func (*Router) SetVIPs([]netip.Addr) error { return errNotLinux }

// SetARPCache does nothing on this platform.
func (*Router) SetARPCache(time.Duration, int) error { return errNotLinux }

// Owned returns nothing on this platform.
func (*Router) Owned() []netip.Addr { return nil }

// Run fails: the data plane needs Linux.
func (*Router) Run(context.Context) error { return errNotLinux }

// Close does nothing on this platform.
func (*Router) Close() error { return nil }

// Stats returns nothing on this platform.
func (*Router) Stats() Stats { return Stats{} }

// LinkMAC returns nothing on this platform.
func (*Router) LinkMAC(string) (net.HardwareAddr, bool) { return nil, false }

// KernelConfig says where and for which NICs SetupKernel works.
type KernelConfig struct {
	Links []Link
	VIPs  []netip.Addr
}

// KernelState records what SetupKernel changed.
type KernelState struct{}

// SetupKernel fails: the data plane needs Linux.
func SetupKernel(KernelConfig) (*KernelState, error) { return nil, errNotLinux }

// Restore does nothing on this platform.
func (*KernelState) Restore() error { return nil }

// Now returns 0 off Linux.
func (*Router) Now() int64 { return 0 }

// Probe fails: the data plane needs Linux.
func (*Router) Probe(context.Context) ([]ProbeResult, error) { return nil, errNotLinux }
