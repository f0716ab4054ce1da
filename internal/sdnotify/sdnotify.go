// Package sdnotify tells systemd about a service's state: the sd_notify(3)
// protocol, which is one datagram of "KEY=value" lines to the unix socket
// named in $NOTIFY_SOCKET. A service of Type=notify sends READY=1 once it
// serves and STOPPING=1 when it begins to stop. It is a dozen lines, so
// ringway implements it instead of depending on go-systemd.
package sdnotify

import (
	"errors"
	"net"
	"os"
)

// Socket is the environment variable systemd names the socket in.
const Socket = "NOTIFY_SOCKET"

// The states ringway sends.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
)

// Notify sends state to the socket in $NOTIFY_SOCKET. It returns false and
// no error when the variable is unset (not started by systemd, or not
// Type=notify): callers need not check.
func Notify(state string) (bool, error) {
	addr := os.Getenv(Socket)
	if addr == "" {
		return false, nil
	}
	return true, Send(addr, state)
}

// Send sends state to the datagram socket at addr: a path, or an abstract
// socket name written with a leading '@' (as systemd writes it).
func Send(addr, state string) error {
	if addr == "" || (addr[0] != '/' && addr[0] != '@') {
		// systemd also passes vsock:CID:PORT for VMs; ringway runs on the
		// host, so only unix sockets are supported.
		return errors.New("sdnotify: $NOTIFY_SOCKET " + addr + " is neither a path nor an abstract socket (@name)")
	}
	// The net package turns a leading '@' into the NUL byte that starts
	// an abstract socket's name (unix(7)), so both forms pass as they are.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}
