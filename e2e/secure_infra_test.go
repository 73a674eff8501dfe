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
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

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

func freePort(t *testing.T) string {
	t.Helper()
	_, port, err := net.SplitHostPort(freeAddr(t))
	require.NoError(t, err)
	return port
}

// startSecureKafka runs scripts/kafka.sh up for a broker of the test's own
// and stops it when the test ends.
func startSecureKafka(t *testing.T, ca *tlstest.CA) secureKafka {
	t.Helper()
	if _, err := exec.LookPath("java"); err != nil {
		t.Fatal("java is needed for the private broker (make test installs it: scripts/kafka.sh up)")
	}
	dir := t.TempDir()
	srv := ca.Server(t, "broker", "localhost")
	for name, from := range map[string]string{"ca.pem": ca.CertFile, "broker.crt": srv.CertFile, "broker.key": srv.KeyFile} {
		b, err := os.ReadFile(from)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o600))
	}
	k := secureKafka{}
	plain, ctl, saslSSL, ssl := freePort(t), freePort(t), freePort(t), freePort(t)
	k.SASLSSL, k.SSL, k.Port, k.SSLPort = "localhost:"+saslSSL, "localhost:"+ssl, saslSSL, ssl
	users := ""
	for u, p := range kafkaUsers {
		users += u + ":" + p + ","
	}
	env := append(os.Environ(), "KAFKA_BROKERS=", "SITEWATCH_KAFKA_STATE="+filepath.Join(dir, "state"),
		"SITEWATCH_KAFKA_PORT="+plain, "SITEWATCH_KAFKA_CONTROLLER_PORT="+ctl,
		"SITEWATCH_KAFKA_SASL_SSL_PORT="+saslSSL, "SITEWATCH_KAFKA_SSL_PORT="+ssl,
		"SITEWATCH_KAFKA_TLS_DIR="+dir, "SITEWATCH_KAFKA_SASL_USERS="+users[:len(users)-1])
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "scripts", "kafka.sh")
	kafkaSh := func(action string) *exec.Cmd {
		cmd := exec.Command("bash", script, action)
		cmd.Env = env
		return cmd
	}
	t.Cleanup(func() {
		if out, err := kafkaSh("down").CombinedOutput(); err != nil {
			t.Errorf("stopping the private broker: %v: %s", err, out)
		}
	})
	out, err := kafkaSh("up").CombinedOutput()
	require.NoError(t, err, "starting the private broker: %s", out)
	return k
}

// startTLSPostgres runs a PostgreSQL of the test's own on 127.0.0.1 that
// accepts TCP connections only over TLS, with a certificate for localhost
// only, and returns its port.
func startTLSPostgres(t *testing.T, ca *tlstest.CA) string {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(bins) == 0 {
		t.Skip("no PostgreSQL server binaries under /usr/lib/postgresql")
	}
	bin := filepath.Dir(bins[len(bins)-1])
	dir, err := os.MkdirTemp("", "sitewatch-pgtls-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	// PostgreSQL refuses to run as root: as root, it runs as postgres.
	var cred *syscall.Credential
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		pg, err := user.Lookup("postgres")
		require.NoError(t, err)
		uid, _ = strconv.Atoi(pg.Uid)
		gid, _ = strconv.Atoi(pg.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	as := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return cmd
	}
	srv := ca.Server(t, "postgres", "localhost")
	for name, content := range map[string]string{"server.crt": srv.CertPEM, "server.key": srv.KeyPEM, "ca.pem": ca.CertPEM} {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600)) // the server insists on 0600 for its key
		require.NoError(t, os.Chown(path, uid, gid))
	}
	require.NoError(t, os.Chown(dir, uid, gid))
	data := filepath.Join(dir, "data")
	out, err := as("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8").CombinedOutput()
	require.NoError(t, err, "initdb: %s", out)
	// TCP only with TLS: a plaintext connection finds no line and is
	// refused. The role certuser logs in with a client certificate only.
	require.NoError(t, os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte("local all all trust\n"+
		"hostssl all certuser 127.0.0.1/32 cert\nhostssl all certuser ::1/128 cert\n"+
		"hostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n"), 0o600))
	require.NoError(t, os.Chown(filepath.Join(data, "pg_hba.conf"), uid, gid))
	port := freePort(t)
	server := as("postgres", "-D", data, "-p", port, "-k", dir, "-c", "listen_addresses=localhost", "-c", "fsync=off",
		"-c", "ssl=on", "-c", "ssl_cert_file="+filepath.Join(dir, "server.crt"), "-c", "ssl_key_file="+filepath.Join(dir, "server.key"),
		"-c", "ssl_ca_file="+filepath.Join(dir, "ca.pem")) // the CA of client certificates
	log := &syncBuffer{}
	server.Stdout, server.Stderr = log, log
	require.NoError(t, server.Start())
	t.Cleanup(func() {
		_ = server.Process.Signal(syscall.SIGINT) // fast shutdown
		_ = server.Wait()
		if t.Failed() {
			t.Logf("---- private postgres with TLS ----\n%s", log.String())
		}
	})
	url := fmt.Sprintf("postgres://postgres@localhost:%s/postgres?sslmode=verify-full&sslrootcert=%s", port, ca.CertFile)
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return false
		}
		_ = conn.Close(ctx)
		return true
	}, 30*time.Second, 100*time.Millisecond, "private postgres with TLS answers")
	out, err = exec.Command("psql", url, "-Xqc", "CREATE ROLE certuser LOGIN").CombinedOutput()
	if err != nil { // psql may be missing: pgx does it
		conn, cerr := pgx.Connect(context.Background(), url)
		require.NoError(t, cerr)
		_, cerr = conn.Exec(context.Background(), "CREATE ROLE certuser LOGIN")
		require.NoError(t, cerr, "%s", out)
		_ = conn.Close(context.Background())
	}
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
