package config

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// KeySize is the length of the cluster key in bytes.
const KeySize = 32

// ReadKey reads a cluster key file: 64 hexadecimal characters (32 bytes),
// surrounding white space allowed. A file that group or others may read is
// still accepted; KeyWarnings reports it.
func ReadKey(path string) ([KeySize]byte, error) {
	var key [KeySize]byte
	data, err := ReadFile(path, "cluster key", MaxSecretSize)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return key, fmt.Errorf("cluster key %s does not exist; create it with `ringway key generate %s` and copy it to every node: %w", path, path, err)
		}
		return key, err
	}
	return parseKey(path, data)
}

func parseKey(path string, data []byte) ([KeySize]byte, error) {
	var key [KeySize]byte
	text := bytes.TrimSpace(data)
	if len(text) != 2*KeySize {
		return key, fmt.Errorf("cluster key %s holds %d characters; it must be exactly %d hex characters (create one with `ringway key generate FILE`)", path, len(text), 2*KeySize)
	}
	if _, err := hex.Decode(key[:], text); err != nil {
		return key, fmt.Errorf("cluster key %s is not hexadecimal (%v); it must be %d characters 0-9 a-f", path, err, 2*KeySize)
	}
	return key, nil
}

// ReadToken reads the management API's bearer token: the file's text,
// surrounding white space removed, at least 16 characters.
func ReadToken(path string) (string, error) {
	b, err := ReadFile(path, "management.token_file", MaxSecretSize)
	if err != nil {
		return "", fmt.Errorf("%w (write one with `ringway key generate %s`)", err, path)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return "", fmt.Errorf("management.token_file %s: the token is %d characters; use at least 16", path, len(tok))
	}
	return tok, nil
}

// KeyWarnings lists what should be fixed about a readable key file without
// making it unusable: permissions that let group or others read it.
func KeyWarnings(path string) []string {
	st, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if st.Mode().Perm()&0o077 != 0 {
		return []string{fmt.Sprintf("cluster key %s has mode %04o, so group or others can read it; run chmod 600 %s", path, st.Mode().Perm(), path)}
	}
	return nil
}

// WriteKey writes a new random cluster key to path with mode 0600. It
// refuses to overwrite an existing file, so a running cluster's key is
// never replaced by accident.
func WriteKey(path string) error {
	var key [KeySize]byte
	if _, err := rand.Read(key[:]); err != nil {
		return fmt.Errorf("generate cluster key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; not overwriting a cluster key (remove it first if you really mean to replace it): %w", path, err)
		}
		return fmt.Errorf("create cluster key: %w", err)
	}
	// O_CREATE's mode is filtered by the umask, which may only narrow 0600;
	// Chmod makes the mode exact anyway.
	err = f.Chmod(0o600)
	if err == nil {
		_, err = fmt.Fprintf(f, "%x\n", key)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path) // never leave a half-written key behind
		return fmt.Errorf("write cluster key: %w", err)
	}
	return nil
}
