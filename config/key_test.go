package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteReadKey(t *testing.T) {
	old := syscall.Umask(0) // a permissive umask must not widen the mode
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "cluster.key")
	if err := WriteKey(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if len(bytes.TrimSpace(data)) != 64 {
		t.Errorf("key file holds %q, want 64 hex chars", data)
	}
	k1, err := ReadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if k1 == ([KeySize]byte{}) {
		t.Errorf("key is all zero")
	}
	if w := KeyWarnings(path); len(w) != 0 {
		t.Errorf("warnings for a 0600 key: %v", w)
	}
	// Never overwrite.
	if err := WriteKey(path); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second WriteKey = %v, want 'already exists'", err)
	}
	if k2, _ := ReadKey(path); k2 != k1 {
		t.Errorf("key changed after refused overwrite")
	}
	// Two keys differ.
	path2 := filepath.Join(t.TempDir(), "other.key")
	if err := WriteKey(path2); err != nil {
		t.Fatal(err)
	}
	if k2, _ := ReadKey(path2); k2 == k1 {
		t.Errorf("two generated keys are equal")
	}
}

func TestReadKeyErrors(t *testing.T) {
	dir := t.TempDir()
	hex64 := strings.Repeat("0123456789abcdef", 4)
	cases := []struct {
		name, content, frag string
		mode                os.FileMode
	}{
		{"ok with white space", "\n  " + hex64 + "  \n\n", "", 0o600},
		{"upper case", strings.ToUpper(hex64), "", 0o600},
		{"short", hex64[:62], "holds 62 characters; it must be exactly 64 hex characters", 0o600},
		{"not hex", "zz" + hex64[2:], "is not hexadecimal", 0o600},
		{"empty", "", "holds 0 characters", 0o600},
		{"two keys", hex64 + "\n" + hex64, "holds 129 characters", 0o600},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := ReadKey(path)
			switch {
			case tc.frag == "" && err != nil:
				t.Errorf("ReadKey: %v", err)
			case tc.frag != "" && (err == nil || !strings.Contains(err.Error(), tc.frag)):
				t.Errorf("ReadKey = %v, want an error containing %q", err, tc.frag)
			}
		})
	}
	if _, err := ReadKey(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "ringway key generate") {
		t.Errorf("missing key: %v, want a hint to generate one", err)
	}
}

func TestKeyWarnings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	if err := os.WriteFile(path, []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	w := KeyWarnings(path)
	if len(w) != 1 || !strings.Contains(w[0], "mode 0644") || !strings.Contains(w[0], "chmod 600") {
		t.Errorf("KeyWarnings = %q, want one about mode 0644 with chmod 600", w)
	}
	if _, err := ReadKey(path); err != nil {
		t.Errorf("a group-readable key must still be usable: %v", err)
	}
}
