package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnitFile: packaging/ringway.service passes `systemd-analyze verify`
// and says what docs/install.md promises of it. The binary path is pointed
// at an executable that exists here (verify checks it).
func TestUnitFile(t *testing.T) {
	unit, err := os.ReadFile("../../packaging/ringway.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "User=ringway",
		"AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW", "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET", "SystemCallFilter=@system-service",
		"ExecStart=/usr/local/bin/ringway run --config /etc/ringway/ringway.yaml",
	} {
		if !strings.Contains(string(unit), "\n"+line+"\n") {
			t.Errorf("the unit lacks the line %q", line)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is not installed: under CI the unit file must be verified (.ci/run installs systemd)")
		}
		t.Skip("systemd-analyze is not installed (apt-get install systemd); the unit file is not verified")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ringway.service")
	writeFile(t, path, strings.ReplaceAll(string(unit), "/usr/local/bin/ringway", exe), 0o644)
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
