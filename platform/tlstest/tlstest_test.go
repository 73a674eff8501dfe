package tlstest

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCertificatesVerify(t *testing.T) {
	ca := NewCA(t, "test")
	srv := ca.Server(t, "server", "localhost")
	cli := ca.Client(t, "alice")
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM([]byte(ca.CertPEM)))

	pair, err := tls.X509KeyPair([]byte(srv.CertPEM), []byte(srv.KeyPEM))
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	require.NoError(t, err)
	_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"})
	require.NoError(t, err)
	_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1"})
	require.Error(t, err, "only the names asked for")

	pair, err = tls.X509KeyPair([]byte(cli.CertPEM), []byte(cli.KeyPEM))
	require.NoError(t, err)
	leaf, err = x509.ParseCertificate(pair.Certificate[0])
	require.NoError(t, err)
	_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	require.NoError(t, err)
	require.Equal(t, "alice", leaf.Subject.CommonName)
}
