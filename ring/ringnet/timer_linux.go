package ringnet

import (
	"context"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// osTimer is a CLOCK_MONOTONIC timerfd, non-blocking, read through the
// runtime's poller (os.File), with raw system calls for the same reason as
// rawUDP4: a counted syscall.Syscall would wake the runtime's monitor
// thread.
type osTimer struct {
	f      *os.File
	rc     syscall.RawConn
	buf    [8]byte // expiration count
	ok     bool
	readFn func(uintptr) bool
	setFn  func(uintptr)
	spec   unix.ItimerSpec
}

func newOSTimer() (*osTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "ringnet-timerfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	t := &osTimer{f: f, rc: rc}
	t.readFn, t.setFn = t.read, t.settime
	return t, nil
}

// set arms the timer; a zero it_value would disarm it, so a delay of 0
// or less becomes 1 ns.
func (t *osTimer) set(d time.Duration) {
	d = max(d, 1)
	t.spec.Value = unix.NsecToTimespec(int64(d))
	t.rc.Control(t.setFn) // fails only once stopped, when nothing waits
}

func (t *osTimer) settime(fd uintptr) {
	unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, fd, 0, uintptr(unsafe.Pointer(&t.spec)), 0, 0, 0)
}

func (t *osTimer) read(fd uintptr) bool {
	for {
		_, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&t.buf[0])), uintptr(len(t.buf)))
		switch e {
		case 0:
			t.ok = true
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // not expired yet: wait on the poller
		}
		t.ok = false
		return true
	}
}

// wait reads the timerfd. Run stops the timer when ctx ends, which ends
// the read. Only the Run goroutine calls it.
func (t *osTimer) wait(ctx context.Context) bool {
	t.ok = false
	if err := t.rc.Read(t.readFn); err != nil {
		return false
	}
	return t.ok && ctx.Err() == nil
}

func (t *osTimer) stop() { t.f.Close() }
