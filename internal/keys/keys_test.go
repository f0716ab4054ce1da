package keys

import (
	"bytes"
	"testing"
)

// Two infos give two keys; the same info the same key; a short cluster
// key is refused.
func TestGCM(t *testing.T) {
	key := bytes.Repeat([]byte{1}, ClusterKeyLen)
	a, err := GCM(key, []byte("proto a"))
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := GCM(key, []byte("proto a"))
	b, _ := GCM(key, []byte("proto b"))
	nonce := make([]byte, a.NonceSize())
	sealed := a.Seal(nil, nonce, []byte("hello"), nil)
	if _, err := a2.Open(nil, nonce, sealed, nil); err != nil {
		t.Errorf("the same info did not give the same key: %v", err)
	}
	if _, err := b.Open(nil, nonce, sealed, nil); err == nil {
		t.Error("another info opened the datagram")
	}
	if _, err := GCM(key[:16], []byte("proto a")); err == nil {
		t.Error("a 16-byte cluster key was accepted")
	}
}
