package pluginapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// tlsServerName is the name go-plugin's server certificate is issued for.
const tlsServerName = "localhost"

// clientCertLifetime covers the longest session (MaxSessionLifetime).
const clientCertLifetime = MaxSessionLifetime + 24*time.Hour

// tlsMaterial is the mTLS material of one plugin connection: the core's
// ephemeral client certificate and key, and the plugin's certificate as
// seen on the first connection.
type tlsMaterial struct {
	clientCertPEM []byte
	clientKeyPEM  []byte
	cert          tls.Certificate

	mu         sync.Mutex
	serverCert []byte // DER
}

// newTLSMaterial generates a self-signed P-256 client certificate, shaped
// like go-plugin's AutoMTLS certificate (the plugin uses it as its only
// client CA).
func newTLSMaterial() (*tlsMaterial, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate client key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: tlsServerName, Organization: []string{"gitlab-runner-kubevirt"}},
		DNSNames:              []string{tlsServerName},
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(clientCertLifetime),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create client certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal client key: %w", err)
	}
	return materialFromPEM(
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		nil)
}

// materialFromPEM rebuilds the material of a stored session.
func materialFromPEM(certPEM, keyPEM, serverDER []byte) (*tlsMaterial, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	return &tlsMaterial{clientCertPEM: certPEM, clientKeyPEM: keyPEM, cert: cert, serverCert: serverDER}, nil
}

// clientConfig is the TLS configuration of a launch: go-plugin fills in
// RootCAs from the handshake line; the plugin's certificate is recorded on
// the first connection.
func (m *tlsMaterial) clientConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{m.cert},
		MinVersion:   tls.VersionTLS12,
		ServerName:   tlsServerName,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the plugin presented no certificate")
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.serverCert == nil {
				m.serverCert = cs.PeerCertificates[0].Raw
			}
			return nil
		},
	}
}

// reattachConfig trusts only the recorded plugin certificate.
func (m *tlsMaterial) reattachConfig() (*tls.Config, error) {
	server, err := x509.ParseCertificate(m.serverCert)
	if err != nil {
		return nil, fmt.Errorf("plugin certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(server)
	return &tls.Config{
		Certificates: []tls.Certificate{m.cert},
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS12,
		ServerName:   tlsServerName,
	}, nil
}

// server returns the plugin's certificate (DER), nil before the first
// connection.
func (m *tlsMaterial) server() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.serverCert
}
