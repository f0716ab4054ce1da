package config

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	nodemapOK = "# lab\n203.0.113.1 198.51.100.1\n203.0.113.2, 198.51.100.2\n203.0.113.3,198.51.100.3  # third\n"
	vipOK     = "virtual IP Pool\nVIRTUAL_IP 203.0.113.0 {\n203.0.113.91\n203.0.113.92-203.0.113.94\n}\nVIRTUAL_IP 198.51.100.0/24\n{ 198.51.100.91 198.51.100.92 198.51.100.93 198.51.100.94 }\n"
	lmOK      = "enableMonitor()\naddMachine(203.0.113.254)\naddMachine( 198.51.100.254 );\n"
)

func importString(nodemap, vip, lm string, opts ImportOptions) ([]byte, error) {
	var r io.Reader
	if lm != "" {
		r = strings.NewReader(lm)
	}
	return Import(strings.NewReader(nodemap), strings.NewReader(vip), r, opts)
}

func TestImportRoundTrip(t *testing.T) {
	out, err := importString(nodemapOK, vipOK, lmOK, ImportOptions{ClusterName: "lab", Interfaces: []string{"ext0", "int0"}, NodeID: "n2", KeyFile: "/k"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("imported.yaml", out)
	if err != nil {
		t.Fatalf("import output does not pass check: %v\n%s", err, out)
	}
	if got, want := c.Summary(), "cluster lab, node n2 (2 of 3), 2 subnets, 8 VIPs, 0 routes"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	// The result equals the hand-written lab config, apart from what the
	// .cfg files do not carry.
	lab, err := Load("../examples/lab/ringway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lab.Nodes, c.Nodes, cmpNet); diff != "" {
		t.Errorf("nodes (-lab +imported):\n%s", diff)
	}
	for i := range lab.Subnets {
		if diff := cmp.Diff(lab.Subnets[i].VIPs, c.Subnets[i].VIPs, cmpNet); diff != "" {
			t.Errorf("subnet %d VIPs (-lab +imported):\n%s", i, diff)
		}
	}
	if !c.Monitors.Ping.Enabled || len(c.Monitors.Ping.Targets) != 2 {
		t.Errorf("ping monitor = %+v, want enabled with 2 targets", c.Monitors.Ping)
	}
	if c.Cluster.KeyFile != "/k" || c.Subnets[1].Interface != "int0" {
		t.Errorf("options not applied: %+v %+v", c.Cluster, c.Subnets[1])
	}
}

func TestImportShippedExamples(t *testing.T) {
	open := func(name string) *os.File {
		f, err := os.Open("../examples/patent/" + name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	out, err := Import(open("nodemap.cfg"), open("vip.cfg"), open("localmonitor.cfg"), ImportOptions{Interfaces: []string{"ext0", "int0"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("imported.yaml", out); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

func TestImportDefaults(t *testing.T) {
	out, err := importString("192.0.2.1\n192.0.2.2\n", "VIRTUAL_IP 192.0.2.0 { 192.0.2.100 }\n", "", ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("x.yaml", out)
	if err != nil {
		t.Fatal(err)
	}
	if c.Nodes[1].ID != "n2" || c.Node.ID != "n1" || c.Subnets[0].Interface != "eth0" || c.Subnets[0].Prefix.Bits() != 24 || c.Cluster.Name != "ringway" {
		t.Errorf("defaults not applied:\n%s", out)
	}
	if !strings.Contains(string(out), "key_file: /etc/ringway/cluster.key") {
		t.Errorf("key_file is not spelled out:\n%s", out)
	}
}

func TestImportErrors(t *testing.T) {
	ifaces := ImportOptions{Interfaces: []string{"ext0", "int0"}}
	cases := []struct {
		name             string
		nodemap, vip, lm string
		opts             ImportOptions
		want             []string // "file:line: fragment"
	}{
		{"patent Table 2 verbatim", nodemapOK,
			"virtual IP Pool\nVIRTUAL_IP 131.143.36.0 {\n131.143.36.91\n131.143.36.91\n131.143.36.91\n131.143.36.91\n}\n", "", ImportOptions{},
			[]string{"vip.cfg:4: duplicate VIP 131.143.36.91 (first on line 3); every VIP may appear once",
				"vip.cfg:5: duplicate VIP 131.143.36.91 (first on line 3)", "vip.cfg:6: duplicate VIP 131.143.36.91 (first on line 3)"}},
		{"bad nodemap address", "203.0.113.1 198.51.100.1\n203.0.113.x 198.51.100.2\n", vipOK, "", ifaces,
			[]string{`nodemap.cfg:2: "203.0.113.x" is not an IPv4 address`}},
		{"nodemap duplicate", "203.0.113.1 198.51.100.1\n203.0.113.1 198.51.100.2\n", vipOK, "", ifaces,
			[]string{"nodemap.cfg:2: address 203.0.113.1 is listed twice (also line 1)"}},
		{"nodemap missing subnet", "203.0.113.1 198.51.100.1\n203.0.113.2\n", vipOK, "", ifaces,
			[]string{"nodemap.cfg:2: node 2 (n2) has no address in subnet 198.51.100.0/24 (vip.cfg line 6)"}},
		{"nodemap address outside", "203.0.113.1 198.51.100.1 192.0.2.1\n", vipOK, "", ifaces,
			[]string{"nodemap.cfg:1: address 192.0.2.1 is in none of the VIRTUAL_IP subnets of vip.cfg"}},
		{"nodemap address is a VIP", "203.0.113.91 198.51.100.1\n", vipOK, "", ifaces,
			[]string{"nodemap.cfg:1: address 203.0.113.91 is also a VIP (vip.cfg line 3)"}},
		{"empty nodemap", "# nothing\n", vipOK, "", ifaces,
			[]string{"nodemap.cfg: no nodes; write one line per node"}},
		{"vip outside block", nodemapOK, "VIRTUAL_IP 203.0.113.0 {\n203.0.114.1\n}\n", "", ImportOptions{},
			[]string{"vip.cfg:2: VIP 203.0.114.1 is outside the block's subnet 203.0.113.0/24 (line 1)"}},
		{"vip block never closed", nodemapOK, "VIRTUAL_IP 203.0.113.0 {\n203.0.113.91\n", "", ImportOptions{},
			[]string{"vip.cfg:1: this VIRTUAL_IP block is never closed"}},
		{"vip garbage line", nodemapOK, "VIRTUAL_IP 203.0.113.0 { 203.0.113.9 }\nsomething else\n", "", ImportOptions{},
			[]string{"vip.cfg:2: expected `VIRTUAL_IP <subnet address> {`, found \"something else\""}},
		{"vip subnet with host bits", nodemapOK, "VIRTUAL_IP 203.0.113.5 {\n}\n", "", ImportOptions{},
			[]string{`vip.cfg:1: subnet address: "203.0.113.5/24" has host bits set; write 203.0.113.0/24`}},
		{"vip broadcast", nodemapOK, "VIRTUAL_IP 203.0.113.0 {\n203.0.113.255 }\n", "", ImportOptions{},
			[]string{"vip.cfg:2: VIP 203.0.113.255 is the broadcast address of 203.0.113.0/24"}},
		{"vip nested block", nodemapOK, "VIRTUAL_IP 203.0.113.0 {\nVIRTUAL_IP 198.51.100.0 {\n}\n", "", ImportOptions{},
			[]string{"vip.cfg:2: VIRTUAL_IP inside the block of line 1"}},
		{"no vip blocks", nodemapOK, "\n", "", ImportOptions{},
			[]string{"vip.cfg: no VIRTUAL_IP blocks"}},
		{"localmonitor typo", nodemapOK, vipOK, "enableMonitor()\naddMachin(203.0.113.254)\n", ifaces,
			[]string{"localmonitor.cfg:2: unknown call addMachin(); did you mean addMachine()?"}},
		{"localmonitor bad address", nodemapOK, vipOK, "enableMonitor()\naddMachine(host)\n", ifaces,
			[]string{`localmonitor.cfg:2: addMachine: "host" is not an IPv4 address`}},
		{"localmonitor garbage", nodemapOK, vipOK, "ping everything\n", ifaces,
			[]string{`localmonitor.cfg:1: expected enableMonitor(), disableMonitor() or addMachine(IP), found "ping everything"`}},
		{"localmonitor both", nodemapOK, vipOK, "enableMonitor()\naddMachine(203.0.113.254)\ndisableMonitor()\n", ifaces,
			[]string{"localmonitor.cfg:3: both enableMonitor() (line 1) and disableMonitor() (line 3)"}},
		{"localmonitor enabled without targets", nodemapOK, vipOK, "enableMonitor()\n", ifaces,
			[]string{"localmonitor.cfg:1: enableMonitor() without any addMachine(IP) line"}},
		{"localmonitor argument", nodemapOK, vipOK, "enableMonitor(1)\n", ifaces,
			[]string{"localmonitor.cfg:1: enableMonitor() takes no argument"}},
		{"errors in every file at once", "203.0.113.x\n", "VIRTUAL_IP 1.2.3.4.5 {\n}\n", "frob()\n", ImportOptions{},
			[]string{"localmonitor.cfg:1: unknown call frob()", "nodemap.cfg:1: \"203.0.113.x\" is not", "vip.cfg:1: subnet address:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := importString(tc.nodemap, tc.vip, tc.lm, tc.opts)
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Import = %v, want Errors", err)
			}
			if len(errs) != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(errs), len(tc.want), err)
			}
			for i, w := range tc.want {
				if i < len(errs) && !strings.HasPrefix(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want prefix %q", i, errs[i].Error(), w)
				}
			}
		})
	}
}

func TestImportOptionErrors(t *testing.T) {
	cases := []struct {
		name string
		opts ImportOptions
		frag string
	}{
		{"interface count", ImportOptions{Interfaces: []string{"ext0"}}, "1 interfaces given for the 2 VIRTUAL_IP blocks of vip.cfg"},
		{"interface name", ImportOptions{Interfaces: []string{"ext0", "a-very-long-interface"}}, "Linux interface names have at most 15"},
		{"node id count", ImportOptions{NodeIDs: []string{"a", "b"}}, "2 node ids given for the 3 nodes of nodemap.cfg"},
		{"node not in ids", ImportOptions{NodeID: "n7"}, `node "n7" is not one of the node ids n1, n2, n3`},
		{"prefix length", ImportOptions{PrefixLen: 31}, "prefix length 31: use 1 to 30"},
		{"cluster name", ImportOptions{ClusterName: "a b"}, `cluster name "a b"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := importString(nodemapOK, vipOK, "", tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.frag) {
				t.Errorf("Import = %v, want an error containing %q", err, tc.frag)
			}
		})
	}
}
