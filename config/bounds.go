package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/vipstate"
)

// Bounds: the least and the most `config check` accepts for every timer,
// rate and queue, so that whatever it accepts `ringway run` starts with
// (the ring core, the ring driver and the router refuse less than these
// refuse; cmd/ringway's TestRunAcceptsWhatCheckAccepts pins it) and no
// value does something no operator means (a GARP every nanosecond, a
// billion packets queued per next hop). docs/config.md lists them.
const (
	// The ring counts time in ticks. Below 500 µs a tick is shorter than
	// a scheduler's wake-up latency on a loaded host (the driver would
	// only run late ticks in bursts); above 100 ms the ring cannot detect
	// a failure faster than keepalived's defaults.
	MinTick = 500 * time.Microsecond
	MaxTick = 100 * time.Millisecond

	// Every ring timer is at most 2^20 ticks in the core (ring.Config);
	// at MinTick that is 524 s, above every maximum here.
	MaxHopInterval = time.Second
	MaxMinRotation = 10 * time.Second
	MaxAckTimeout  = time.Second
	MaxTokenLoss   = time.Minute
	MaxJoinTimeout = time.Minute

	// MaxNodes is the largest node map: the ring core's and the VIP
	// table's limit (ring.MaxNodes, vipstate.MaxNodes).
	MaxNodes = ring.MaxNodes
	// MaxSubnets is the most subnets: one ring path each (ring.MaxPaths).
	MaxSubnets = ring.MaxPaths
	// MaxVIPs is the most VIPs of all subnets together (vipstate.MaxRows):
	// at about 6 bytes a row the table still fits one ring message.
	MaxVIPs = vipstate.MaxRows

	// Monitors: the NIC poll and each check run at most every 10 ms.
	MinMonitorInterval = 10 * time.Millisecond
	MaxMonitorInterval = time.Hour
	MinPingTimeout     = time.Millisecond
	MaxPingTargets     = 64

	// Balancing.
	MaxThreshold = 10.0    // ten times the mean load
	MaxMinRate   = 1 << 40 // bytes/s (8.8 Tbit/s): more is a typo
	MaxCooldown  = 24 * time.Hour

	// Router: GARP and the ARP cache.
	MaxGARPCount       = 100
	MinGARPInterval    = 10 * time.Millisecond
	MaxGARPInterval    = time.Minute
	MinGARPRefresh     = time.Second // 0 = off
	MaxGARPRefresh     = time.Hour
	MaxGARPRate        = 100_000 // per second
	MinARPCacheTTL     = time.Second
	MaxARPCacheTTL     = time.Hour
	MaxARPCacheQueue   = 128 // packets; Linux holds about 101 (unres_qlen_bytes 212992)
	MinFlowTimeout     = time.Second
	MaxFlowTimeout     = 30 * 24 * time.Hour
	maxFlowTimeoutText = "720h (30 days)"
)

// File size limits: a config, key or token file larger than these is a
// wrong path (a log, a disk image), not a config.
const (
	MaxConfigSize = 1 << 20 // bytes
	MaxSecretSize = 4 << 10 // bytes, a key or token file
)

// ErrTooLarge is returned (wrapped) for a file above its size limit.
var ErrTooLarge = errors.New("file too large")

// ReadFile reads path, refusing a file larger than limit bytes; what names
// the file in errors ("config", "cluster key"). It reads at most limit+1
// bytes, whatever the file (a FIFO or /dev/zero included).
func ReadFile(path, what string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s %s is larger than %s; is this the right file? %w", what, path, size(limit), ErrTooLarge)
	}
	return data, nil
}

func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// between reports a duration outside [lo, hi]; def is the default named in
// the message. It reports nothing for a value that did not decode.
func (v *validator) between(path string, d, lo, hi, def time.Duration) {
	if v.broken(path) || (d >= lo && d <= hi) {
		return
	}
	v.errorf(path, "%s is %v; write %v to %v (default %v)", path, d, lo, hi, def)
}

// intBetween is between for counts and rates; unit follows the numbers.
func (v *validator) intBetween(path string, n, lo, hi, def int, unit string) {
	if v.broken(path) || (n >= lo && n <= hi) {
		return
	}
	v.errorf(path, "%s is %d; write %d to %d%s (default %d)", path, n, lo, hi, unit, def)
}
