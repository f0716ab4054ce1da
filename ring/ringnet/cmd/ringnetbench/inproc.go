package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ring/ringnet"
)

// inproc runs every node in this process; a crash closes a driver.
type inproc struct {
	spec
	inst []*instance
}

type instance struct {
	view
	id   ring.NodeID
	core *ring.Node
	d    *ringnet.Driver
	done chan struct{}
}

func (c *inproc) start(id ring.NodeID, goal []ring.NodeID) error {
	core, d, err := c.newNode(id)
	if err != nil {
		return err
	}
	in := &instance{id: id, core: core, d: d, done: make(chan struct{})}
	in.goal = goal
	c.inst[id-1] = in
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case s := <-d.States():
				in.observe(s.Members, time.Now())
			case <-d.Done():
				return
			}
		}
	}()
	go func() {
		d.Run(context.Background())
		wg.Wait()
		close(in.done)
	}()
	return nil
}

func (c *inproc) live() []*view {
	var vs []*view
	for _, in := range c.inst {
		if in != nil {
			vs = append(vs, &in.view)
		}
	}
	return vs
}

func (c *inproc) crash(id ring.NodeID) {
	in := c.inst[id-1]
	in.d.Close()
	<-in.done
	c.inst[id-1] = nil
}

func (c *inproc) close() {
	for i := range c.inst {
		if c.inst[i] != nil {
			c.crash(ring.NodeID(i + 1))
		}
	}
}

func (c *inproc) dump() {
	for _, in := range c.inst {
		if in == nil {
			continue
		}
		_, m := in.reached()
		var st ring.Status
		in.d.Do(context.Background(), func(ringnet.Core) { st = in.core.Status() })
		fmt.Fprintf(os.Stderr, "  node %d: committed members %v; status %+v; driver %+v\n", in.id, m, st, in.d.Stats())
	}
}

// sample reads the counters of every node; CPU is the whole process's, so
// cpu has one entry.
func (c *inproc) sample() (sample, error) {
	s := sample{at: time.Now()}
	for _, in := range c.inst {
		st := in.d.Stats()
		s.tx += st.TxBytes
		s.dg += st.TxDatagrams
		var hops uint64
		if err := in.d.Do(context.Background(), func(ringnet.Core) { hops = in.core.Status().Counters.TokensAccepted }); err != nil {
			return s, err
		}
		s.hops += hops
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	s.cpu = []time.Duration{time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	s.cs = uint64(ru.Nvcsw + ru.Nivcsw)
	return s, nil
}
