package e2e

// Private servers with TLS for the secure-connection tests: a Kafka broker
// with SASL_SSL and mTLS listeners (scripts/kafka.sh, its own state and
// ports) and a PostgreSQL that accepts only TLS connections, both with
// certificates of a CA made for the test. The shared plaintext servers are
// left alone.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/platform/porttest"
	"github.com/sitewatch/sitewatch/platform/tlstest"
)

// secureKafka is a private broker whose TLS listeners present a
// certificate for localhost only.
type secureKafka struct {
	SASLSSL string // localhost:port of the SASL_SSL listener
	SSL     string // localhost:port of the SSL listener requiring a client certificate
	Port    string // the listeners' port is the same on 127.0.0.1, which the certificate does not name
	SSLPort string
}

// Users of the private broker, for SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
var kafkaUsers = map[string]string{"alice": "alice-s3cret", "bob": "bob-s3cret"}

// startSecureKafka starts a broker of the test's own with TLS and SASL
// listeners, stopped when the test ends.
func startSecureKafka(t *testing.T, ca *tlstest.CA) secureKafka {
	t.Helper()
	dir := t.TempDir()
	srv := ca.Server(t, "broker", "localhost")
	for name, from := range map[string]string{"ca.pem": ca.CertFile, "broker.crt": srv.CertFile, "broker.key": srv.KeyFile} {
		b, err := os.ReadFile(from)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o600))
	}
	b := kafkatest.StartPrivate(t, kafkatest.PrivateOptions{TLSDir: dir, SASLUsers: kafkaUsers})
	saslSSL, ssl := strconv.Itoa(b.SASLSSLPort), strconv.Itoa(b.SSLPort)
	return secureKafka{SASLSSL: "localhost:" + saslSSL, SSL: "localhost:" + ssl, Port: saslSSL, SSLPort: ssl}
}

// startTLSPostgres runs a PostgreSQL of the test's own on 127.0.0.1 that
// accepts TCP connections only over TLS, with a certificate for localhost
// only (scripts/pgtls.sh), and returns its port.
func startTLSPostgres(t *testing.T, ca *tlstest.CA) string {
	t.Helper()
	// Not t.TempDir: as root the server runs as postgres, which must own it.
	dir, err := os.MkdirTemp("", "sitewatch-pgtls-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	srv := ca.Server(t, "postgres", "localhost")
	for name, content := range map[string]string{"server.crt": srv.CertPEM, "server.key": srv.KeyPEM, "ca.pem": ca.CertPEM} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "scripts", "pgtls.sh")
	port := strconv.Itoa(porttest.Port(t))
	out, err := exec.Command(script, "up", dir, port).CombinedOutput()
	require.NoError(t, err, "scripts/pgtls.sh up: %s", out)
	t.Cleanup(func() {
		if out, err := exec.Command(script, "down", dir).CombinedOutput(); err != nil {
			t.Logf("scripts/pgtls.sh down: %v\n%s", err, out)
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			t.Logf("---- private postgres with TLS ----\n%s", log)
		}
	})
	url := fmt.Sprintf("postgres://postgres@localhost:%s/postgres?sslmode=verify-full&sslrootcert=%s", port, ca.CertFile)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err, "private postgres with TLS answers")
	require.NoError(t, conn.Close(ctx))
	return port
}

// readiness returns a service's /readyz status code and its checks.
func readiness(t *testing.T, ops string) (int, map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ops+"/readyz", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Checks map[string]string `json:"checks"`
	}
	_ = json.Unmarshal(body, &r)
	return resp.StatusCode, r.Checks
}
