package lab

import (
	"context"
	"net"
	"net/http"
	"time"
)

// transport is an HTTP transport whose connections are made inside namespace
// ns: the socket is created on a thread in ns (a socket keeps the namespace
// it was made in), then used from any goroutine.
func (l *Lab) transport(ns string) *http.Transport {
	return &http.Transport{
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: 5 * time.Second,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := l.Do(ns, func() error {
				var err error
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}
}
