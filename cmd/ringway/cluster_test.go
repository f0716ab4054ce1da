package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ringway/ringway/mgmt"
)

// fakeDrain plays a cluster in which the closed node gives up a VIP per
// status call, then ends a flow per call.
type fakeDrain struct {
	closed bool
	owns   int
	flows  int64
	node   string // the node answering
	stuck  bool   // never lets go of its VIPs
}

func (f *fakeDrain) Node(_ context.Context, op mgmt.NodeOp) error {
	f.closed = op.Op == "close"
	return nil
}

func (f *fakeDrain) Status(context.Context) (mgmt.Status, error) {
	st := mgmt.Status{Node: f.node, Filter: &mgmt.FilterStatus{Enabled: true, Flows: f.flows}}
	if f.closed {
		st.Closed = []string{"n2"}
	}
	for range f.owns {
		st.VIPs = append(st.VIPs, mgmt.VIP{Owner: "n2"})
	}
	st.VIPs = append(st.VIPs, mgmt.VIP{Owner: "n1"})
	switch {
	case f.stuck:
	case f.owns > 0:
		f.owns--
	case f.flows > 0:
		f.flows--
	}
	return st, nil
}

func TestDrain(t *testing.T) {
	f := &fakeDrain{owns: 2, flows: 3, node: "n2"}
	var out bytes.Buffer
	if err := drain(context.Background(), f, "n2", &out, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"closing n2", "n2 answers 2 VIPs", "n2 answers 1 VIPs", "closed and answers no VIP", "still tracks", "tracks no flow", "drained n2"} {
		if !strings.Contains(got, want) {
			t.Errorf("drain output lacks %q:\n%s", want, got)
		}
	}
	if f.flows != 0 || !f.closed {
		t.Errorf("drain returned with %d flows, closed %v", f.flows, f.closed)
	}

	// Asked through another node: VIPs only, and it says so.
	f = &fakeDrain{owns: 1, flows: 3, node: "n1"}
	out.Reset()
	if err := drain(context.Background(), f, "n2", &out, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "not visible from n1") || strings.Contains(s, "tracks") {
		t.Errorf("drain through n1:\n%s", out.String())
	}

	// A node that never lets go: the timeout says what state is left.
	f = &fakeDrain{owns: 1, node: "n2", stuck: true}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := drain(ctx, f, "n2", &out, time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "stays closed") {
		t.Errorf("drain past its timeout: %v", err)
	}
}
