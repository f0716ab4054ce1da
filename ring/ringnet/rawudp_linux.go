package ringnet

import (
	"net/netip"
	"sync"
	"syscall"
	"unsafe"
)

// rawUDP4 does the IPv4 sockets' reads and writes: recvfrom and sendto with
// MSG_DONTWAIT made through syscall.RawSyscall6 inside RawConn.Read and
// Write, which park the goroutine on the runtime's poller while the socket
// is not ready, as the net package does. The difference is the raw call:
// the net package's syscall.Syscall tells the scheduler that the thread
// enters a system call, and that wakes the runtime's monitor thread
// (sysmon) whenever it is asleep, which then polls every 20 µs for a while.
// At a few datagrams per token hop that was about a third of a ring node's
// CPU (docs/ring.md, "CPU"). A non-blocking sendto or recvfrom of one small
// datagram returns in microseconds, so nothing is lost by not telling the
// scheduler.
//
// The callbacks are method values bound once, and the arguments and
// results live in the struct, so a datagram costs no allocation.
type rawUDP4 struct {
	rc syscall.RawConn

	rmu    sync.Mutex
	rbuf   []byte
	rsa    syscall.RawSockaddrInet4
	rn     int
	rerr   syscall.Errno
	readFn func(uintptr) bool

	wmu     sync.Mutex
	wbuf    []byte
	wsa     syscall.RawSockaddrInet4
	wn      int
	werr    syscall.Errno
	wtry    bool // TryWriteTo: EAGAIN ends the write instead of waiting
	wfull   bool // the socket answered EAGAIN to a TryWriteTo
	writeFn func(uintptr) bool
}

const haveRawUDP4 = true

func newRawUDP4(rc syscall.RawConn) *rawUDP4 {
	r := &rawUDP4{rc: rc}
	r.readFn, r.writeFn = r.read, r.write
	return r
}

func (r *rawUDP4) read(fd uintptr) bool {
	for {
		salen := uint32(syscall.SizeofSockaddrInet4)
		n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&r.rbuf[0])), uintptr(len(r.rbuf)),
			syscall.MSG_DONTWAIT, uintptr(unsafe.Pointer(&r.rsa)), uintptr(unsafe.Pointer(&salen)))
		switch e {
		case 0:
			r.rn = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait on the poller until readable
		}
		r.rerr = e
		return true
	}
}

func (r *rawUDP4) write(fd uintptr) bool {
	var p uintptr
	if len(r.wbuf) > 0 {
		p = uintptr(unsafe.Pointer(&r.wbuf[0]))
	}
	for {
		n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, p, uintptr(len(r.wbuf)),
			syscall.MSG_DONTWAIT, uintptr(unsafe.Pointer(&r.wsa)), syscall.SizeofSockaddrInet4)
		switch e {
		case 0:
			r.wn = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if r.wtry {
				r.wfull = true
				return true
			}
			return false // socket buffer full: wait on the poller until writable
		}
		r.werr = e
		return true
	}
}

// ReadFrom reads one datagram into b: n is its length, or len(b) when it
// was longer (truncated).
func (r *rawUDP4) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	if len(b) == 0 {
		return 0, netip.AddrPort{}, syscall.EINVAL
	}
	r.rmu.Lock()
	defer r.rmu.Unlock()
	r.rbuf, r.rn, r.rerr = b, 0, 0
	err := r.rc.Read(r.readFn)
	r.rbuf = nil
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	if r.rerr != 0 {
		return 0, netip.AddrPort{}, r.rerr
	}
	if r.rsa.Family != syscall.AF_INET {
		return 0, netip.AddrPort{}, syscall.EAFNOSUPPORT
	}
	pb := (*[2]byte)(unsafe.Pointer(&r.rsa.Port)) // network byte order
	return r.rn, netip.AddrPortFrom(netip.AddrFrom4(r.rsa.Addr), uint16(pb[0])<<8|uint16(pb[1])), nil
}

// WriteTo sends b to the IPv4 address to, waiting while the socket's send
// buffer is full.
func (r *rawUDP4) WriteTo(b []byte, to netip.AddrPort) (int, error) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	return r.writeTo(b, to, false)
}

// TryWriteTo sends b to the IPv4 address to if the socket takes it at
// once; when its send buffer is full it returns false without waiting.
func (r *rawUDP4) TryWriteTo(b []byte, to netip.AddrPort) (bool, error) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	_, err := r.writeTo(b, to, true)
	return err == nil && !r.wfull, err
}

// writeTo does WriteTo and TryWriteTo; the caller holds r.wmu.
func (r *rawUDP4) writeTo(b []byte, to netip.AddrPort, try bool) (int, error) {
	r.wsa = syscall.RawSockaddrInet4{Family: syscall.AF_INET, Addr: to.Addr().As4()}
	pb := (*[2]byte)(unsafe.Pointer(&r.wsa.Port))
	pb[0], pb[1] = byte(to.Port()>>8), byte(to.Port())
	r.wbuf, r.wn, r.werr, r.wtry, r.wfull = b, 0, 0, try, false
	err := r.rc.Write(r.writeFn)
	r.wbuf = nil
	if err != nil {
		return 0, err
	}
	if r.werr != 0 {
		return 0, r.werr
	}
	return r.wn, nil
}
