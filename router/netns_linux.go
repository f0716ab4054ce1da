package router

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// inNetns runs fn on an OS thread switched into ns (the current namespace
// when ns <= 0). Sockets and devices created by fn belong to ns and keep
// working from any goroutine afterwards. If the thread cannot be switched
// back it stays locked, so the Go runtime discards it instead of reusing a
// thread in the wrong namespace.
func inNetns(ns netns.NsHandle, fn func() error) error {
	if ns <= 0 {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("read current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %v: %w", ns, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("return to the original network namespace: %w (thread left locked)", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// nlHandle opens a netlink handle in ns (the current namespace when ns <= 0).
func nlHandle(ns netns.NsHandle) (*netlink.Handle, error) {
	if ns <= 0 {
		return netlink.NewHandle()
	}
	return netlink.NewHandleAt(ns)
}
