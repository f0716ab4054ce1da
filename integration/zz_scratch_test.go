//go:build linux

package integration

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/lab/workload"
	"github.com/ringway/ringway/mgmt"
)

func TestScratchFirstSYN(t *testing.T) {
	c := newCluster(t, 3, func(i int, cf *config.Config) {
		cf.VIPs = []config.VIPPolicy{
			{VIP: lab.ExtGateway, Preferred: "n1", Persistence: config.PersistPreferred},
			{VIP: lab.IntGateway, Preferred: "n2", Persistence: config.PersistPreferred},
		}
		server := []config.Net{{Prefix: netip.PrefixFrom(lab.ServerAddr, 32)}}
		cf.Filter.Enabled = true
		cf.Filter.Default = config.ActionDrop
		cf.Filter.Rules = []config.Rule{{Name: "web", From: []config.Net{{Name: "ext"}}, To: server, Proto: config.ProtoTCP,
			Ports: []config.PortRange{{First: 80, Last: 80}}, Action: config.ActionAccept}}
		cf.Filter.Replication = true
	})
	for i := 1; i <= 3; i++ {
		if err := c.lab.StartNode(c.bin, i); err != nil {
			t.Fatal(err)
		}
	}
	c.waitFor(func(st mgmt.Status) bool {
		return len(st.Members) == 3 && owner(st, lab.ExtGateway.String()) == "n1" && owner(st, lab.IntGateway.String()) == "n2"
	}, 15*time.Second, "members")
	l := c.lab
	srv, err := workload.ListenTCPEcho(l, l.Server(), netip.AddrPortFrom(lab.ServerAddr, 80))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dst := netip.AddrPortFrom(lab.ServerAddr, 80).String()
	var failed atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	for range 16 {
		wg.Go(func() {
			err := l.Do(l.Client(), func() error {
				cn, err := net.DialTimeout("tcp4", dst, 2*time.Second)
				if err != nil {
					return err
				}
				defer cn.Close()
				cn.SetDeadline(time.Now().Add(time.Second))
				cn.Write(make([]byte, 16))
				_, err = io.ReadFull(cn, make([]byte, 16))
				return err
			})
			if err != nil {
				failed.Add(1)
			}
			t.Logf("+%v %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
	wg.Wait()
	for i := 1; i <= 3; i++ {
		st, err := c.status(i)
		if err != nil || st.Filter == nil {
			continue
		}
		t.Logf("n%d drops %v", i, st.Filter.Drops)
		if tu := st.Filter.Tunnel; tu != nil {
			t.Logf("n%d tunnel drops %v defer %+v redirects %d", i, tu.Drops, tu.Defer, tu.Redirects)
			if tu.Replication != nil {
				t.Logf("n%d fill %+v", i, tu.Replication.Fill)
			}
		}
	}
	t.Logf("failed %d", failed.Load())
}
