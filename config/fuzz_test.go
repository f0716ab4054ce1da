package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzParse: the parser never panics, always explains a rejection, and an
// accepted config survives Marshal → Parse unchanged.
func FuzzParse(f *testing.F) {
	f.Add(base)           // the reference lab
	f.Add(testConfigYAML) // flow style, short timers
	f.Add(filterBase)     // the contract's filter and forward sections
	f.Add(base + "filter: {rules: [{from: [ext, 10.0.0.0/8, any], ports: [1-2, 3], proto: tcp, action: drop}], local: [{proto: udp, ports: [53]}]}\n")
	f.Add(base + "ring: {token_loss: 1s, ack_retries: 0}\nmonitors: {ping: {enabled: true, targets: [192.0.2.9]}}\n")
	f.Add("cluster: {name: x}\nnode: {id: a}\nnodes: [{id: a, addresses: [10.0.0.1]}]\nsubnets: [{interface: e, prefix: 10.0.0.0/8, vips: [10.0.0.2-10.0.15.255]}]\n")
	f.Add("a: &x [1, *x]\n")                        // recursive alias
	f.Add("subnets: [{vips: [1.2.3.4-1.2.3.1]}]\n") // reversed range
	f.Add("nodes: {id: 3}\n---\nx: 1\n")            // wrong kinds, two documents
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse("fuzz.yaml", []byte(in))
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("rejection is %T %v, want non-empty Errors", err, err)
			}
			for _, e := range errs {
				if e.Msg == "" || e.File != "fuzz.yaml" {
					t.Fatalf("error without message or file: %+v", e)
				}
			}
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		c2, err := Parse("fuzz.yaml", out)
		if err != nil {
			t.Fatalf("accepted config does not re-parse: %v\n--- input\n%s\n--- marshalled\n%s", err, in, out)
		}
		c.src, c2.src = nil, nil
		if !reflect.DeepEqual(c, c2) { // cheap; cmp only to explain a failure
			t.Fatalf("round trip changed the config (-first +second):\n%s",
				cmp.Diff(c, c2, cmpNet, cmpopts.IgnoreUnexported(Config{}), cmpopts.EquateEmpty()))
		}
	})
}

// fuzzImport runs Import with one input fuzzed: no panic, rejections are
// explained, and accepted input yields a config that passes check.
func fuzzImport(t *testing.T, nodemap, vip, lm string) {
	out, err := importString(nodemap, vip, lm, ImportOptions{})
	if err != nil {
		if err.Error() == "" {
			t.Fatalf("empty error")
		}
		if strings.Contains(err.Error(), "please report this") {
			t.Fatalf("accepted .cfg input produced an invalid config: %v", err)
		}
		return
	}
	if _, err := Parse("imported.yaml", out); err != nil {
		t.Fatalf("import output does not pass check: %v\n%s", err, out)
	}
}

func FuzzImportNodemap(f *testing.F) {
	f.Add(nodemapOK)
	f.Add("203.0.113.1,198.51.100.1 # one node\n")
	f.Add("203.0.113.1 198.51.100.1\n203.0.113.1\n") // duplicate, missing subnet
	f.Fuzz(func(t *testing.T, in string) { fuzzImport(t, in, vipOK, lmOK) })
}

func FuzzImportVIP(f *testing.F) {
	f.Add(vipOK)
	f.Add("VIRTUAL_IP 131.143.36.0 {\n131.143.36.91\n131.143.36.91\n}\n") // patent Table 2
	f.Add("VIRTUAL_IP 203.0.113.0/25 { 203.0.113.5-203.0.113.9 }\nVIRTUAL_IP 198.51.100.0 {}\n")
	f.Fuzz(func(t *testing.T, in string) { fuzzImport(t, nodemapOK, in, lmOK) })
}

func FuzzImportLocalmonitor(f *testing.F) {
	f.Add(lmOK)
	f.Add("disableMonitor()\naddMachine(192.0.2.1)\n")
	f.Add("enableMonitor(\naddMachine(1.2.3.4))\n")
	f.Fuzz(func(t *testing.T, in string) { fuzzImport(t, nodemapOK, vipOK, in) })
}
