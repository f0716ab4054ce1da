package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTokenBits(t *testing.T) {
	for _, tc := range []struct {
		tok      string
		min, max float64
	}{
		{"0123456789abcdef0123456789abcdef", 128, 128}, // 32 hex
		{"0123456789abcdef0123456789abcde", 124, 124},  // 31 hex: too short
		{strings.Repeat("a", 200), 200, 200},           // 1 bit a character at most
		{strings.Repeat("ab", 40), 160, 160},           // 2 bits
		{"password-password-password", 0, 127},
		{"Zq3vT9kLmP2xR8wN4yB6cH1jD5fG7hA", 180, 190}, // 31 alphanumeric
		{"", 0, 0},
	} {
		if got := TokenBits(tc.tok); got < tc.min || got > tc.max {
			t.Errorf("TokenBits(%q) = %.1f, want %.0f..%.0f", tc.tok, got, tc.min, tc.max)
		}
	}
}

func TestReadTokenRefusesWeakFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	good := "0123456789abcdef0123456789abcdef0123456789abcdef\n"
	for _, tc := range []struct {
		name, text string
		mode       os.FileMode
		want       string // "" = accepted
	}{
		{"ok", good, 0o600, ""},
		{"ok-owner-only", good, 0o400, ""},
		{"world", good, 0o644, "has mode 0644, so group or others can read or change it; run `chmod 600"},
		{"group", good, 0o640, "chmod 600"},
		{"weak", "0123456789abcdef0123\n", 0o600, "about 80 bits of entropy, fewer than 128; write a random one with `rm"},
		{"pattern", strings.Repeat("ab", 30), 0o600, "about 120 bits"},
	} {
		p := write(tc.name, tc.text, tc.mode)
		tok, err := ReadTokenFor("management.read_token_file", p)
		switch {
		case tc.want == "" && (err != nil || tok != strings.TrimSpace(good)):
			t.Errorf("%s: %q, %v", tc.name, tok, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "management.read_token_file "+p)):
			t.Errorf("%s: err = %v, want it to name the key and file and say %q", tc.name, err, tc.want)
		}
	}
}
