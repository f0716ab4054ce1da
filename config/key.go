package config

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strings"
	"unicode/utf8"
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

// MinTokenBits is the least estimated entropy of a management token.
const MinTokenBits = 128

// ReadToken reads the management API's admin token (management.token_file);
// see ReadTokenFor.
func ReadToken(path string) (string, error) { return ReadTokenFor("management.token_file", path) }

// ReadTokenFor reads a bearer token from path, named key in errors: the
// file's text, surrounding white space removed. It refuses a file that
// group or others may read or write (anyone who reads it is an operator),
// and a token whose estimated entropy (TokenBits) is below MinTokenBits;
// both errors say how to fix the file.
func ReadTokenFor(key, path string) (string, error) {
	b, err := ReadFile(path, key, MaxSecretSize)
	if err != nil {
		return "", fmt.Errorf("%w (write one with `ringway key generate %s`)", err, path)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s %s has mode %04o, so group or others can read or change it; run `chmod 600 %s` (and chown it to the user ringway runs as)", key, path, st.Mode().Perm(), path)
	}
	tok := strings.TrimSpace(string(b))
	if bits := TokenBits(tok); bits < MinTokenBits {
		return "", fmt.Errorf("%s %s: the token holds about %.0f bits of entropy, fewer than %d; write a random one with `rm %s && ringway key generate %s` (64 hex characters, 256 bits)", key, path, bits, MinTokenBits, path, path)
	}
	return tok, nil
}

// TokenBits estimates the entropy of a token in bits, as if each character
// were drawn at random from the smallest usual alphabet that holds all of
// them (digits 10, hex 16, then letters, digits and punctuation), but
// counting at most twice as many symbols as the token actually uses, so a
// pattern such as "abababab..." scores low. 32 random hex characters score
// 128, the 64 that `ringway key generate` writes 256.
func TokenBits(tok string) float64 {
	var lower, upper, digit, other, hexOnly = false, false, false, false, true
	seen := map[rune]bool{}
	for _, r := range tok {
		seen[r] = true
		switch {
		case r >= '0' && r <= '9':
			digit = true
		case r >= 'a' && r <= 'z':
			lower = true
			hexOnly = hexOnly && r <= 'f'
		case r >= 'A' && r <= 'Z':
			upper = true
			hexOnly = hexOnly && r <= 'F'
		default:
			other = true
		}
	}
	class := 0
	switch {
	case !lower && !upper && !other:
		class = 10
	case hexOnly && !other && !(lower && upper):
		class = 16
	default:
		for _, c := range []struct {
			used bool
			n    int
		}{{lower, 26}, {upper, 26}, {digit, 10}, {other, 32}} {
			if c.used {
				class += c.n
			}
		}
	}
	class = min(class, 2*len(seen))
	if class < 2 {
		return 0
	}
	return float64(utf8.RuneCountInString(tok)) * math.Log2(float64(class))
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
