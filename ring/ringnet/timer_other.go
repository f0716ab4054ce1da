//go:build !linux

package ringnet

import "errors"

type osTimer struct{ wakeTimer }

func newOSTimer() (*osTimer, error) { return nil, errors.New("ringnet: no timerfd on this system") }
