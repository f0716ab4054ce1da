package node

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ringstate"
)

// reloadYAML is lcConfig's cluster as a file; %ID%, %VIPS% and %EXTRA% are
// filled in per node and per case.
const reloadYAML = `cluster: {name: lifecycle, key_file: /etc/ringway/cluster.key}
node: {id: %ID%}
nodes:
  - {id: n1, addresses: [203.0.113.1]}
  - {id: n2, addresses: [203.0.113.2]}
subnets:
  - {name: ext, interface: ext0, prefix: 203.0.113.0/24, vips: [%VIPS%]}
ring: {tick: 1ms, hop_interval: 1ms, ack_timeout: 2ms, join_timeout: 20ms}
management: {listen: ""}
%EXTRA%`

func reloadFile(id, vips, extra string) string {
	return strings.NewReplacer("%ID%", id, "%VIPS%", vips, "%EXTRA%", extra).Replace(reloadYAML)
}

// TestReload: a reload applies through the token as one epoch that both
// nodes run, whichever node's file changed; a broken file and a key that
// needs a restart are refused with file:line errors and nothing changes;
// a node whose file disagrees with the cluster says which keys differ.
func TestReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		paths := map[int]string{}
		write := func(id int, content string) {
			t.Helper()
			if err := os.WriteFile(paths[id], []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		c := newClusterWith(t, fastRing, nil, func(id int, cfg *Config) {
			paths[id] = filepath.Join(dir, cfg.File.Node.ID+".yaml")
			cfg.File.File = paths[id]
			cfg.File.Cluster.KeyFile = "/etc/ringway/cluster.key"
		})
		n1, n2 := c.node(1), c.node(2)
		ctx := context.Background()
		reload := func(tn *testNode) (res struct {
			Outcome string
			Epoch   uint64
			Errors  []string
		}) {
			t.Helper()
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			r := tn.Reload(rctx)
			res.Outcome, res.Epoch, res.Errors = r.Outcome, r.Epoch, r.Errors
			return res
		}
		epochs := func() []uint64 { return []uint64{n1.run.Load().epoch, n2.run.Load().epoch} }

		// A broken file: refused with the errors config check gives.
		write(1, reloadFile("n1", "203.0.113.91-203.0.113.94", "ring: {tick: 1ns}\nbogus: 1\n"))
		res := reload(n1)
		if res.Outcome != "refused" || !strings.Contains(strings.Join(res.Errors, "\n"), paths[1]+":") ||
			!strings.Contains(strings.Join(res.Errors, "\n"), `unknown key "bogus"`) {
			t.Fatalf("broken file: %+v", res)
		}
		if !n1.logs.has(slog.LevelError, "reload refused") {
			t.Errorf("the refusal is not logged:\n%s", n1.logs)
		}
		// A ring timer: refused, saying the restart it needs.
		write(1, strings.Replace(reloadFile("n1", "203.0.113.91-203.0.113.94", ""), "hop_interval: 1ms", "hop_interval: 2ms", 1))
		if res := reload(n1); res.Outcome != "refused" || !strings.Contains(strings.Join(res.Errors, "\n"), "restart every node") {
			t.Fatalf("ring timer change: %+v", res)
		}
		if slices.Max(epochs()) != 0 {
			t.Fatalf("epochs %v after refused reloads", epochs())
		}

		// .95 added and .91 preferred on n2, in both files; n1 reloads.
		pref := "vips:\n  - {vip: 203.0.113.91, preferred: n2, persistence: preferred}\n"
		write(1, reloadFile("n1", "203.0.113.91-203.0.113.95", pref))
		write(2, reloadFile("n2", "203.0.113.91-203.0.113.95", pref))
		if res := reload(n1); res.Outcome != "applied" || res.Epoch != 1 {
			t.Fatalf("adding a VIP: %+v", res)
		}
		v91, v95 := netip.MustParseAddr("203.0.113.91"), netip.MustParseAddr("203.0.113.95")
		c.waitFor(time.Second, "both nodes run epoch 1, .95 is answered and .91 is on n2", func() bool {
			return slices.Equal(epochs(), []uint64{1, 1}) && slices.Contains(n2.plane.Owned(), v91) &&
				(slices.Contains(n1.plane.Owned(), v95) || slices.Contains(n2.plane.Owned(), v95))
		})
		if s := n2.Status().Config; len(s.Differs) != 0 || s.Hash != s.FileHash {
			t.Errorf("node 2's file is the cluster's, but status says %+v", s)
		}
		// n2 reloads the same file: nothing to do.
		if res := reload(n2); res.Outcome != "unchanged" || res.Epoch != 1 {
			t.Fatalf("second node's reload of the same file: %+v\n%s", res, n2.logs)
		}

		// .95 removed in n1's file only; n1 reloads: both run it, n2 says
		// its file differs.
		write(1, reloadFile("n1", "203.0.113.91-203.0.113.94", pref))
		if res := reload(n1); res.Outcome != "applied" || res.Epoch != 2 {
			t.Fatalf("removing a VIP: %+v", res)
		}
		c.waitFor(time.Second, "both nodes run epoch 2 and nobody answers .95", func() bool {
			return slices.Equal(epochs(), []uint64{2, 2}) && !slices.Contains(n1.plane.Owned(), v95) && !slices.Contains(n2.plane.Owned(), v95)
		})
		if s := n2.Status().Config; !slices.Equal(s.Differs, []string{"subnets[0].vips"}) || s.Epoch != 2 {
			t.Errorf("node 2's status after a change its file lacks: %+v", s)
		}
		if !n2.logs.has(slog.LevelWarn, "differs from the cluster") {
			t.Errorf("node 2 does not log that its file differs:\n%s", n2.logs)
		}
		// Both stayed members throughout.
		if st := n1.state.Load(); !slices.Equal(st.Members, []ring.NodeID{1, 2}) {
			t.Errorf("members %v", st.Members)
		}
		// The content has left the token after a rotation.
		c.waitFor(time.Second, "the epoch's content leaves the token", func() bool {
			e, ok := ringstate.CurrentEpoch(n1.state.Load().Carriages)
			return ok && len(e.Content) == 0
		})
	})
}
