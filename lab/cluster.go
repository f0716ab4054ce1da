package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/mgmt"
)

// MgmtAddr is where every lab node's management API listens, inside the
// node's own namespace.
const MgmtAddr = "127.0.0.1:9440"

// ClusterConfig is the ringway config of a lab with n nodes, for node i: the
// reference lab of DESIGN.md. VIP .91 of both subnets forms group gw1,
// preferred on n1 (the client's and the server's gateway); the other VIPs
// have no policy. Key and token files are relative to the lab directory.
func ClusterConfig(n, i int) *config.Config {
	c := new(config.Config)
	*c = config.DefaultConfig()
	c.Cluster.Name = "lab"
	c.Cluster.KeyFile = "cluster.key"
	c.Node.ID = fmt.Sprintf("n%d", i)
	for j := 1; j <= n; j++ {
		c.Nodes = append(c.Nodes, config.NodeEntry{ID: fmt.Sprintf("n%d", j), Addresses: []netip.Addr{NodeExt(j), NodeInt(j)}})
	}
	c.Subnets = []config.Subnet{
		{Name: "ext", Interface: ExtIf, Prefix: ExtPrefix, VIPs: VIPs(ExtPrefix)},
		{Name: "int", Interface: IntIf, Prefix: IntPrefix, VIPs: VIPs(IntPrefix)},
	}
	for _, v := range []netip.Addr{ExtGateway, IntGateway} {
		c.VIPs = append(c.VIPs, config.VIPPolicy{VIP: v, Preferred: "n1", Persistence: config.PersistPreferred, Group: "gw1"})
	}
	c.Management.Listen = MgmtAddr
	c.Management.TokenFile = "admin.token"
	return c
}

// WriteCluster writes the cluster key, the admin token and one config per
// node (n1.yaml ...) into the lab directory; edit, if set, adjusts each
// node's config first. It returns the config paths by node.
func (l *Lab) WriteCluster(edit func(i int, c *config.Config)) ([]string, error) {
	key := filepath.Join(l.dir, "cluster.key")
	if _, err := os.Stat(key); errors.Is(err, os.ErrNotExist) {
		if err := config.WriteKey(key); err != nil {
			return nil, err
		}
	}
	tok := make([]byte, 24)
	rand.Read(tok)
	if err := os.WriteFile(filepath.Join(l.dir, "admin.token"), []byte(hex.EncodeToString(tok)+"\n"), 0o600); err != nil {
		return nil, err
	}
	var paths []string
	for i := 1; i <= l.Nodes(); i++ {
		c := ClusterConfig(l.Nodes(), i)
		if edit != nil {
			edit(i, c)
		}
		b, err := c.Marshal()
		if err != nil {
			return nil, fmt.Errorf("lab: config of n%d: %w", i, err)
		}
		p := l.ConfigPath(i)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
		if _, err := config.Load(p); err != nil {
			return nil, fmt.Errorf("lab: the config written for n%d does not load: %w", i, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// ConfigPath is node i's config file in the lab directory.
func (l *Lab) ConfigPath(i int) string { return filepath.Join(l.dir, fmt.Sprintf("n%d.yaml", i)) }

// StartNode starts `bin run -c <node i's config>` in node i's namespace.
// Its log is LogPath(Node(i), "ringway").
func (l *Lab) StartNode(bin string, i int, args ...string) error {
	cmd := exec.Command(bin, append([]string{"run", "-c", l.ConfigPath(i)}, args...)...)
	return l.Start(l.Node(i), cmd)
}

// StopNode sends sig to node i's ringway and waits for it to exit (up to
// timeout; SIGSTOP returns at once).
func (l *Lab) StopNode(i int, sig syscall.Signal, timeout time.Duration) error {
	ns := l.Node(i)
	if _, err := l.Signal(ns, sig); err != nil {
		return err
	}
	if sig == syscall.SIGSTOP || sig == syscall.SIGCONT {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return l.WaitGone(ctx, ns)
}

// AdminToken is the lab's management token.
func (l *Lab) AdminToken() (string, error) {
	b, err := os.ReadFile(filepath.Join(l.dir, "admin.token"))
	return strings.TrimSpace(string(b)), err
}

// NodeStatus asks node i's management API for its status, from inside the
// node's namespace.
func (l *Lab) NodeStatus(ctx context.Context, i int) (mgmt.Status, error) {
	var st mgmt.Status
	err := l.NodeAPI(i, func(c *mgmt.Client) error {
		var err error
		st, err = c.Status(ctx)
		return err
	})
	return st, err
}

// NodeAPI runs fn with a management client of node i whose connections are
// dialled inside the node's namespace.
func (l *Lab) NodeAPI(i int, fn func(*mgmt.Client) error) error {
	tok, err := l.AdminToken()
	if err != nil {
		return err
	}
	c := mgmt.NewClient(MgmtAddr, tok, false)
	c.HTTP.Transport = l.transport(l.Node(i))
	return fn(c)
}
