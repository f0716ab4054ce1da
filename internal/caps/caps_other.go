//go:build !linux

package caps

import "errors"

// ErrCgo: the binary uses cgo, so not every thread can be reached.
var ErrCgo = errors.New("capabilities cannot be changed on every thread of a binary built with cgo")

// Drop is Linux only.
func Drop(keep ...uintptr) error { return errors.New("caps: Linux only") }
