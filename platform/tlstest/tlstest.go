// Package tlstest makes a throw-away certificate authority for tests that
// run real servers with TLS (Kafka, PostgreSQL): a CA, server certificates
// with the host names a test connects by, and client certificates. It runs
// the openssl command line, the tool an operator would use, so the files are
// what a broker or a database accepts in production.
package tlstest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// CA is a certificate authority living in a test's temporary directory.
type CA struct {
	Dir      string // where every file below is written
	CertPEM  string // the CA certificate, PEM text
	CertFile string
	keyFile  string
}

// Pair is a certificate signed by a CA and its unencrypted PKCS#8 key.
type Pair struct {
	CertFile, KeyFile string
	CertPEM, KeyPEM   string
}

// NewCA makes a CA named cn in a fresh directory removed when the test ends.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	dir := t.TempDir()
	ca := &CA{Dir: dir, CertFile: filepath.Join(dir, cn+".ca.pem"), keyFile: filepath.Join(dir, cn+".ca.key")}
	openssl(t, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc",
		"-keyout", ca.keyFile, "-out", ca.CertFile, "-days", "2", "-subj", "/CN="+cn,
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	ca.CertPEM = read(t, ca.CertFile)
	return ca
}

// Server makes a server certificate for the given host names and IP
// addresses (its subject alternative names), named name in ca.Dir.
func (ca *CA) Server(t testing.TB, name string, hosts ...string) Pair {
	t.Helper()
	var sans []string
	for _, h := range hosts {
		if net.ParseIP(h) != nil {
			sans = append(sans, "IP:"+h)
		} else {
			sans = append(sans, "DNS:"+h)
		}
	}
	return ca.sign(t, name, "serverAuth", "subjectAltName="+strings.Join(sans, ","))
}

// Client makes a client certificate whose subject is CN=cn.
func (ca *CA) Client(t testing.TB, cn string) Pair {
	t.Helper()
	return ca.sign(t, cn, "clientAuth", "")
}

func (ca *CA) sign(t testing.TB, name, usage, san string) Pair {
	t.Helper()
	p := Pair{CertFile: filepath.Join(ca.Dir, name+".crt"), KeyFile: filepath.Join(ca.Dir, name+".key")}
	args := []string{"req", "-x509", "-CA", ca.CertFile, "-CAkey", ca.keyFile,
		"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc",
		"-keyout", p.KeyFile, "-out", p.CertFile, "-days", "1", "-subj", "/CN=" + name,
		"-addext", "basicConstraints=critical,CA:FALSE", "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
		"-addext", "extendedKeyUsage=" + usage}
	if san != "" {
		args = append(args, "-addext", san)
	}
	openssl(t, args...)
	p.CertPEM, p.KeyPEM = read(t, p.CertFile), read(t, p.KeyFile)
	return p
}

func openssl(t testing.TB, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is needed to make the test's certificates (scripts/infra.sh up installs it)")
	}
	if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func read(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
