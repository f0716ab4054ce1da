package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ring/ringnet"
)

// proc runs every node in its own process, as in production; a crash is
// SIGKILL. The children report membership changes (with the wall-clock
// instant they committed them) and, on request, their own getrusage.
type proc struct {
	spec
	exe  string
	kids []*kid
}

type kid struct {
	view
	id      ring.NodeID
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	samples chan []uint64
	done    chan struct{}
}

func (p *proc) start(id ring.NodeID, goal []ring.NodeID) error {
	cmd := exec.Command(p.exe, "-child", strconv.Itoa(int(id)), "-nodes", strconv.Itoa(p.n),
		"-port", strconv.Itoa(int(p.addrs[0][0].Port())), "-key", hex.EncodeToString(p.key),
		"-hop", strconv.Itoa(p.hop), "-minrot", strconv.Itoa(p.minRot), "-carriage", strconv.Itoa(p.carriage))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start node %d: %w", id, err)
	}
	k := &kid{id: id, cmd: cmd, stdin: in, samples: make(chan []uint64, 1), done: make(chan struct{})}
	k.goal = goal
	p.kids[id-1] = k
	go func() {
		defer close(k.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) >= 2 && f[0] == "m":
				ns, _ := strconv.ParseInt(f[1], 10, 64)
				var m []ring.NodeID
				if len(f) == 3 {
					for _, x := range strings.Split(f[2], ",") {
						v, _ := strconv.Atoi(x)
						m = append(m, ring.NodeID(v))
					}
				}
				k.observe(m, time.Unix(0, ns))
			case len(f) == 6 && f[0] == "s":
				var v []uint64
				for _, x := range f[1:] {
					u, _ := strconv.ParseUint(x, 10, 64)
					v = append(v, u)
				}
				k.samples <- v
			}
		}
	}()
	return nil
}

func (p *proc) live() []*view {
	var vs []*view
	for _, k := range p.kids {
		if k != nil {
			vs = append(vs, &k.view)
		}
	}
	return vs
}

func (p *proc) crash(id ring.NodeID) {
	k := p.kids[id-1]
	k.cmd.Process.Kill() // SIGKILL: no leave, no close
	k.cmd.Wait()
	<-k.done
	p.kids[id-1] = nil
}

func (p *proc) close() {
	for i, k := range p.kids {
		if k == nil {
			continue
		}
		k.stdin.Close() // the child exits when its stdin closes
		select {
		case <-k.done:
		case <-time.After(2 * time.Second):
			k.cmd.Process.Kill()
			<-k.done
		}
		k.cmd.Wait()
		p.kids[i] = nil
	}
}

func (p *proc) dump() {
	for _, k := range p.kids {
		if k != nil {
			_, m := k.reached()
			fmt.Fprintf(os.Stderr, "  node %d (pid %d): committed members %v\n", k.id, k.cmd.Process.Pid, m)
		}
	}
}

func (p *proc) sample() (sample, error) {
	s := sample{at: time.Now()}
	for _, k := range p.kids {
		if _, err := io.WriteString(k.stdin, "s\n"); err != nil {
			return s, fmt.Errorf("node %d: %w", k.id, err)
		}
	}
	for _, k := range p.kids {
		select {
		case v := <-k.samples:
			s.cpu = append(s.cpu, time.Duration(v[0]))
			s.tx += v[1]
			s.dg += v[2]
			s.hops += v[3]
			s.cs += v[4]
		case <-time.After(5 * time.Second):
			return s, fmt.Errorf("node %d did not answer a sample request", k.id)
		}
	}
	return s, nil
}

// child runs one node until its stdin closes: it prints "m <unix ns>
// <members>" for every change of committed membership and answers "s" with
// "s <cpu ns> <tx bytes> <tx datagrams> <tokens accepted> <context switches>".
func child(id ring.NodeID, sp spec) error {
	core, d, err := sp.newNode(id)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	emit := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		out.WriteString(line)
		out.Flush()
	}
	go func() {
		var last []ring.NodeID
		first := true
		for {
			select {
			case s := <-d.States():
				if first || !slices.Equal(s.Members, last) {
					first, last = false, s.Members
					ids := make([]string, len(s.Members))
					for i, m := range s.Members {
						ids[i] = strconv.Itoa(int(m))
					}
					emit(fmt.Sprintf("m %d %s\n", time.Now().UnixNano(), strings.Join(ids, ",")))
				}
			case <-d.Done():
				return
			}
		}
	}()
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if sc.Text() != "s" {
				continue
			}
			var hops uint64
			d.Do(context.Background(), func(ringnet.Core) { hops = core.Status().Counters.TokensAccepted })
			var ru syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			st := d.Stats()
			emit(fmt.Sprintf("s %d %d %d %d %d\n", ru.Utime.Nano()+ru.Stime.Nano(), st.TxBytes, st.TxDatagrams, hops, ru.Nvcsw+ru.Nivcsw))
		}
		d.Close()
	}()
	return d.Run(context.Background())
}
