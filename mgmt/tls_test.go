package mgmt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ringway test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	s, err := NewServer(Config{Listen: "127.0.0.1:0", Token: testToken, TLSCert: cert, TLSKey: key}, &fakeBackend{st: Status{Node: "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	addr := s.Addr().String()
	if st, err := NewClient("https://"+addr, testToken, true).Status(ctx); err != nil || st.Node != "n1" {
		t.Errorf("status over TLS: %+v, %v", st, err)
	}
	if _, err := NewClient("https://"+addr, testToken, false).Status(ctx); err == nil {
		t.Error("a self-signed certificate was accepted without --insecure")
	}
	if _, err := NewClient(addr, testToken, false).Status(ctx); err == nil {
		t.Error("plain HTTP was answered by a TLS listener")
	}
}

func TestNewServerRefusesBadKeyPair(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	other, _ := writeCert(t, t.TempDir())
	for _, tc := range []struct{ name, cert, key string }{
		{"missing certificate", filepath.Join(dir, "nope.pem"), key},
		{"certificate and key do not match", other, key},
		{"key is not PEM", cert, cert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewServer(Config{Listen: "127.0.0.1:0", Token: testToken, TLSCert: tc.cert, TLSKey: tc.key}, &fakeBackend{})
			if err == nil {
				s.Close()
				t.Fatal("NewServer accepted a key pair it cannot serve with")
			}
			if !strings.Contains(err.Error(), "check management.tls_cert and management.tls_key") {
				t.Errorf("error %q does not say what to check", err)
			}
		})
	}
}

// TestCloseWithoutRun: a node whose start fails after NewServer must not
// keep the management port.
func TestCloseWithoutRun(t *testing.T) {
	s, err := NewServer(Config{Listen: "127.0.0.1:0", Token: testToken}, &fakeBackend{})
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().String()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the port is still taken after Close: %v", err)
	}
	ln.Close()
	if err := s.Run(context.Background()); err != nil {
		t.Errorf("Run after Close: %v, want nil", err)
	}
}
