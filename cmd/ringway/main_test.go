package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs ringway in-process and returns the exit code and outputs.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"ringway"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUsage(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		code     int
		out, err string // fragments of stdout and stderr
	}{
		{"help", []string{"--help"}, exitOK, "COMMANDS:\n   config", ""},
		{"help lists every command", []string{"--help"}, exitOK, "version  print the version", ""},
		{"no command", nil, exitUsage, "USAGE:", "no command given"},
		{"unknown command", []string{"frob"}, exitUsage, "", `unknown command "frob"; the commands are config, key, run, status, vip, node, cluster, flows, lab, version`},
		{"group without command", []string{"config"}, exitUsage, "check", "config needs a command"},
		{"unknown subcommand", []string{"config", "frob"}, exitUsage, "", `config: unknown command "frob"; the commands are check, import`},
		{"unknown flag", []string{"config", "import", "--bogus"}, exitUsage, "", "flag provided but not defined: -bogus; see `ringway config import --help`"},
		{"check without file", []string{"config", "check"}, exitUsage, "", "config check needs exactly one FILE, got 0 arguments"},
		{"check two files", []string{"config", "check", "a", "b"}, exitUsage, "", "got 2 arguments"},
		{"import without files", []string{"config", "import"}, exitUsage, "", "config import needs --nodemap FILE and --vip FILE"},
		{"key generate without file", []string{"key", "generate"}, exitUsage, "", "key generate needs exactly one FILE"},
		{"vip move flags after the arguments", []string{"vip", "move", "203.0.113.91", "n2", "-c", "x.yaml"}, exitUsage, "", "vip move needs VIP NODE after any flags (`ringway vip move [-c FILE] VIP NODE`); got 4 arguments"},
		{"vip close without VIP", []string{"vip", "close"}, exitUsage, "", "vip close needs VIP after any flags"},
		{"flows help", []string{"flows", "--help"}, exitOK, "--addr A", ""},
		{"version", []string{"version"}, exitOK, "ringway ", ""},
		{"version with argument", []string{"version", "x"}, exitUsage, "", "version takes no arguments"},
		{"check help", []string{"config", "check", "--help"}, exitOK, "validate a config file", ""},
		{"check missing file", []string{"config", "check", "/nonexistent/ringway.yaml"}, exitFailure, "", "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			if !strings.Contains(out, tc.out) {
				t.Errorf("stdout lacks %q:\n%s", tc.out, out)
			}
			if !strings.Contains(errOut, tc.err) {
				t.Errorf("stderr lacks %q:\n%s", tc.err, errOut)
			}
		})
	}
}

func TestVersionFromLdflags(t *testing.T) {
	old := version
	version = "v9.8.7"
	defer func() { version = old }()
	code, out, _ := runCLI(t, "version")
	if code != exitOK || !strings.HasPrefix(out, "ringway v9.8.7 go") {
		t.Errorf("version: exit %d, %q", code, out)
	}
}

func TestConfigCheckLabExample(t *testing.T) {
	code, out, errOut := runCLI(t, "config", "check", "../../examples/lab/ringway.yaml")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if want := "ok: cluster lab, node n1 (1 of 3), 2 subnets, 8 VIPs, 1 route\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
}

const goodConfig = `cluster: {name: t, key_file: cluster.key}
node: {id: a}
nodes:
  - {id: a, addresses: [192.0.2.1]}
  - {id: b, addresses: [192.0.2.2]}
subnets:
  - {interface: eth0, prefix: 192.0.2.0/24, vips: [192.0.2.100-192.0.2.101]}
`

func TestConfigCheckKeyFile(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "ringway.yaml"), goodConfig, 0o644)
	key := filepath.Join(dir, "cluster.key")

	// Absent key: a warning, still ok.
	code, out, errOut := runCLI(t, "config", "check", cfg)
	if code != exitOK || !strings.Contains(errOut, "warning: cluster key "+key+" does not exist") || !strings.HasPrefix(out, "ok: cluster t, node a (1 of 2), 1 subnet, 2 VIPs, 0 routes") {
		t.Errorf("absent key: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}

	// Generated key (relative to the config's directory): no warning.
	if code, _, errOut := runCLI(t, "key", "generate", key); code != exitOK {
		t.Fatalf("key generate: %d %s", code, errOut)
	}
	code, _, errOut = runCLI(t, "config", "check", cfg)
	if code != exitOK || errOut != "" {
		t.Errorf("with key: exit %d, stderr %q", code, errOut)
	}

	// Readable by others: a warning.
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "config", "check", cfg)
	if code != exitOK || !strings.Contains(errOut, "chmod 600") {
		t.Errorf("0644 key: exit %d, stderr %q", code, errOut)
	}

	// Malformed key: failure.
	writeFile(t, key, "not a key\n", 0o600)
	code, _, errOut = runCLI(t, "config", "check", cfg)
	if code != exitFailure || !strings.Contains(errOut, "must be exactly 64 hex characters") {
		t.Errorf("bad key: exit %d, stderr %q", code, errOut)
	}
}

// An enabled filter shows in the summary line; one through which nothing
// passes is a warning, not a failure.
func TestConfigCheckFilter(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cluster.key"), strings.Repeat("ab", 32)+"\n", 0o600)
	filter := "filter:\n  enabled: true\n  rules:\n    - {name: web, from: [eth0], to: [192.0.2.100], proto: tcp, ports: [80, 443], action: accept}\n  local: [{proto: tcp, ports: [22]}]\n"
	cfg := writeFile(t, filepath.Join(dir, "ringway.yaml"), goodConfig+filter, 0o644)
	code, out, errOut := runCLI(t, "config", "check", cfg)
	if want := "ok: cluster t, node a (1 of 2), 1 subnet, 2 VIPs, 0 routes, filter on (1 rule, default drop, 1 local service)\n"; code != exitOK || out != want || errOut != "" {
		t.Errorf("exit %d\nstdout %q, want %q\nstderr %q", code, out, want, errOut)
	}

	cfg = writeFile(t, filepath.Join(dir, "ringway.yaml"), goodConfig+"filter: {enabled: true}\n", 0o644)
	code, out, errOut = runCLI(t, "config", "check", cfg)
	if code != exitOK || !strings.HasSuffix(out, ", filter on (0 rules, default drop, 0 local services)\n") || !strings.Contains(errOut, "warning: filter is enabled with default: drop and no rule that accepts: nothing passes") {
		t.Errorf("exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}

	cfg = writeFile(t, filepath.Join(dir, "ringway.yaml"), goodConfig+"filter:\n  rules: [{from: [eth1], action: accept}] \n", 0o644)
	code, _, errOut = runCLI(t, "config", "check", cfg)
	if want := cfg + `:9:19: from: subnet "eth1" is not known; write one of eth0, a prefix such as 192.0.2.0/24, or any`; code != exitFailure || !strings.Contains(errOut, want) {
		t.Errorf("exit %d, stderr %q, want %q", code, errOut, want)
	}
}

func TestConfigCheckReportsAllErrors(t *testing.T) {
	bad := strings.NewReplacer(
		"node: {id: a}", "node: {id: z}",
		"prefix: 192.0.2.0/24", "prefix: 192.0.2.0/24, mtu: 9000",
		"[192.0.2.2]", "[192.0.2.2, 192.0.2.1]",
	).Replace(goodConfig)
	cfg := writeFile(t, filepath.Join(t.TempDir(), "bad.yaml"), bad, 0o644)
	code, out, errOut := runCLI(t, "config", "check", cfg)
	if code != exitFailure || out != "" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{
		cfg + `:2:12: node.id "z" is not in the node map; write one of a, b`,
		cfg + `:5:36: address 192.0.2.1 of node b is also at node a (line 4)`,
		cfg + `:7:45: unknown key "mtu" in subnets; known keys are interface, name, prefix, vips`,
		cfg + ":5:36: node b has two addresses in subnet eth0 (192.0.2.2 and 192.0.2.1)",
		cfg + ": 4 problems",
	} {
		if !strings.Contains(errOut, want+"") {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if n := strings.Count(errOut, "\n"); n != 5 {
		t.Errorf("stderr has %d lines, want 4 errors and a count:\n%s", n, errOut)
	}
}

func TestKeyGenerate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	code, out, _ := runCLI(t, "key", "generate", path)
	if code != exitOK || !strings.Contains(out, "wrote a new cluster key to "+path) {
		t.Fatalf("exit %d: %s", code, out)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v mode %v", err, st.Mode())
	}
	before, _ := os.ReadFile(path)
	code, _, errOut := runCLI(t, "key", "generate", path)
	if code != exitFailure || !strings.Contains(errOut, "already exists") {
		t.Errorf("second generate: exit %d, %q", code, errOut)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Errorf("existing key was changed")
	}
}

func TestConfigImport(t *testing.T) {
	dir := t.TempDir()
	patent := "../../examples/patent/"
	out := filepath.Join(dir, "ringway.yaml")
	args := []string{"config", "import", "--nodemap", patent + "nodemap.cfg", "--vip", patent + "vip.cfg",
		"--localmonitor", patent + "localmonitor.cfg", "--interfaces", "ext0,int0", "--cluster", "lab", "--node", "n3", "-o", out}
	code, _, errOut := runCLI(t, args...)
	if code != exitOK {
		t.Fatalf("import: exit %d: %s", code, errOut)
	}
	code, stdout, errOut := runCLI(t, "config", "check", out)
	if code != exitOK || stdout != "ok: cluster lab, node n3 (3 of 3), 2 subnets, 8 VIPs, 0 routes\n" {
		t.Errorf("check of imported config: exit %d\n%s%s", code, stdout, errOut)
	}
	// -o never overwrites without --force.
	if code, _, errOut := runCLI(t, args...); code != exitFailure || !strings.Contains(errOut, "pass --force") {
		t.Errorf("second import: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, append(args, "--force")...); code != exitOK {
		t.Errorf("import --force: exit %d, %q", code, errOut)
	}
	// Without -o the YAML goes to stdout.
	code, stdout, _ = runCLI(t, "config", "import", "--nodemap", patent+"nodemap.cfg", "--vip", patent+"vip.cfg")
	if code != exitOK || !strings.Contains(stdout, "interface: eth1") {
		t.Errorf("import to stdout: exit %d\n%s", code, stdout)
	}
}

func TestConfigImportErrors(t *testing.T) {
	dir := t.TempDir()
	nodemap := writeFile(t, filepath.Join(dir, "nodemap.cfg"), "131.143.36.1\n131.143.36.2\n", 0o644)
	table2 := writeFile(t, filepath.Join(dir, "vip.cfg"), "virtual IP Pool\nVIRTUAL_IP 131.143.36.0 {\n131.143.36.91\n131.143.36.91\n131.143.36.91\n131.143.36.91\n}\n", 0o644)
	code, out, errOut := runCLI(t, "config", "import", "--nodemap", nodemap, "--vip", table2)
	if code != exitFailure || out != "" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	if !strings.Contains(errOut, table2+":4: duplicate VIP 131.143.36.91 (first on line 3)") || !strings.Contains(errOut, "import failed: 3 problems") {
		t.Errorf("stderr:\n%s", errOut)
	}
	code, _, errOut = runCLI(t, "config", "import", "--nodemap", nodemap, "--vip", filepath.Join(dir, "missing.cfg"))
	if code != exitFailure || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing vip.cfg: exit %d, %q", code, errOut)
	}
}
