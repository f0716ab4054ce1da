package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckReload: SIGHUP logs the file's errors with file:line, or says
// the valid file is not applied until a restart; it never stops the node
// (checkReload returns, whatever the file holds).
func TestCheckReload(t *testing.T) {
	good, err := os.ReadFile("../../examples/lab/ringway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cases := []struct {
		name, content string
		want          []string
	}{
		{"valid", string(good), []string{`level=WARN msg="SIGHUP: the file is valid; live reload is not built yet, restart the node to apply it"`}},
		{"errors", string(good) + "ring:\n  tick: 1ns\nbogus: 1\n", []string{
			`level=ERROR msg="SIGHUP: the config file has errors; the node keeps running on the config it started with"`,
			"ringway.yaml:", "ring.tick is 1ns; write 500µs to 100ms",
			`unknown key \"bogus\" at the top level`,
		}},
		{"missing", "", []string{`level=ERROR msg="SIGHUP: cannot read the config file`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name, "ringway.yaml")
			if tc.content != "" {
				os.MkdirAll(filepath.Dir(path), 0o755)
				writeFile(t, path, tc.content, 0o644)
			}
			var buf bytes.Buffer
			checkReload(slog.New(slog.NewTextHandler(&buf, nil)), path)
			for _, w := range tc.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("log lacks %q:\n%s", w, buf.String())
				}
			}
		})
	}
}
