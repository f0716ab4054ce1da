package main

import (
	"testing"

	"github.com/ringway/ringway/mgmt"
)

// TestConfigLine: the status names every node's file hash, "=" where it is
// the cluster's, and says which keys the answering node's file changes.
func TestConfigLine(t *testing.T) {
	st := mgmt.Status{Node: "n2", Nodes: []string{"n1", "n2", "n3"}, Config: &mgmt.ConfigStatus{
		Epoch: 2, Hash: "aaaaaaaaaaaa", FileHash: "bbbbbbbbbbbb", Differs: []string{"subnets[0].vips"},
		Files: map[string]string{"n1": "aaaaaaaaaaaa", "n2": "bbbbbbbbbbbb"},
	}}
	want := "epoch 2, hash aaaaaaaaaaaa; files: n1 = n2 bbbbbbbbbbbb n3 ? (n2's file differs from the cluster's in subnets[0].vips: update it, or reload the node whose file is right)"
	if got := configLine(st); got != want {
		t.Errorf("configLine:\n got %s\nwant %s", got, want)
	}
}
