package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// listen opens a unixgram socket at addr (a path or @abstract) as systemd
// does for a Type=notify service.
func listen(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func receive(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 256)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("systemd's socket got nothing: %v", err)
	}
	return string(buf[:n])
}

func TestNotifyPath(t *testing.T) {
	addr := filepath.Join(t.TempDir(), "notify")
	c := listen(t, addr)
	t.Setenv(Socket, addr)
	for _, state := range []string{Ready, Stopping} {
		sent, err := Notify(state)
		if !sent || err != nil {
			t.Fatalf("Notify(%q) = %v, %v; want true, nil", state, sent, err)
		}
		if got := receive(t, c); got != state {
			t.Errorf("systemd got %q, want %q", got, state)
		}
	}
}

func TestNotifyAbstract(t *testing.T) {
	addr := fmt.Sprintf("@ringway-sdnotify-test-%d", os.Getpid())
	c := listen(t, addr)
	t.Setenv(Socket, addr)
	if sent, err := Notify(Ready); !sent || err != nil {
		t.Fatalf("Notify = %v, %v; want true, nil", sent, err)
	}
	if got := receive(t, c); got != Ready {
		t.Errorf("systemd got %q, want %q", got, Ready)
	}
}

func TestNotifyUnset(t *testing.T) {
	t.Setenv(Socket, "")
	if sent, err := Notify(Ready); sent || err != nil {
		t.Errorf("Notify without $NOTIFY_SOCKET = %v, %v; want false, nil", sent, err)
	}
}

func TestNotifyErrors(t *testing.T) {
	t.Setenv(Socket, "vsock:2:1234")
	if _, err := Notify(Ready); err == nil {
		t.Error("Notify to a vsock address: no error")
	}
	t.Setenv(Socket, filepath.Join(t.TempDir(), "nobody-listens"))
	if _, err := Notify(Ready); err == nil {
		t.Error("Notify to a socket nobody listens on: no error")
	}
}
