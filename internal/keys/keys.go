// Package keys derives the AES-256-GCM instances that authenticate
// ringway's datagrams from the cluster key: the ring's (ring/ringnet) and
// the inter-node tunnel's (forward). Each derivation names its protocol,
// version, sender and boot in the HKDF info, so no key is shared between
// protocols, senders or boots.
package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// ClusterKeyLen is the cluster key's length in bytes.
const ClusterKeyLen = 32

// GCM returns AES-256-GCM under K = HKDF-SHA256(clusterKey, info).
func GCM(clusterKey []byte, info []byte) (cipher.AEAD, error) {
	if len(clusterKey) != ClusterKeyLen {
		return nil, fmt.Errorf("cluster key is %d bytes, want %d", len(clusterKey), ClusterKeyLen)
	}
	k, err := hkdf.Key(sha256.New, clusterKey, nil, string(info), 32)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}
