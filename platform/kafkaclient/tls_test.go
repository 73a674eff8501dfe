package kafkaclient

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/platform/config"
	"github.com/sitewatch/sitewatch/platform/tlstest"
)

func TestNormalizePEM(t *testing.T) {
	want := "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"
	for _, in := range []string{
		want,
		`-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n`,
		`-----BEGIN CERTIFICATE-----\r\nQUJD\r\n-----END CERTIFICATE-----`,
		"  -----BEGIN CERTIFICATE-----\r\nQUJD\r\n-----END CERTIFICATE-----\r\n\n",
	} {
		require.Equal(t, want, NormalizePEM(in), "%q", in)
	}
}

// The TLS material is checked before any connection: a bad one is named by
// its flag, and its content (a secret, for a key) is never in the error.
func TestValidateTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "kafka")
	client := ca.Client(t, "alice")
	other := ca.Client(t, "bob")
	escaped := strings.ReplaceAll(client.KeyPEM, "\n", `\n`) // as a platform's secret store holds it
	ssl := func(c Config) Config {
		c.Brokers, c.SecurityProtocol = "localhost:9093", "ssl"
		return c
	}
	for name, c := range map[string]Config{
		"CA file":                   ssl(Config{CAFile: ca.CertFile}),
		"CA text":                   ssl(Config{CAPEM: ca.CertPEM}),
		"CA text with \\n escapes":  ssl(Config{CAPEM: strings.ReplaceAll(ca.CertPEM, "\n", `\n`)}),
		"client files":              ssl(Config{CAFile: ca.CertFile, CertFile: client.CertFile, KeyFile: client.KeyFile}),
		"client text":               ssl(Config{CAPEM: ca.CertPEM, CertPEM: client.CertPEM, KeyPEM: escaped}),
		"client file, key as text":  ssl(Config{CertFile: client.CertFile, KeyPEM: client.KeyPEM}),
		"SASL over TLS, system CAs": {Brokers: "b:9094", SecurityProtocol: "sasl_ssl", SASLMechanism: "SCRAM-SHA-512", SASLUsername: "u", SASLPassword: "p"},
	} {
		require.NoError(t, c.Validate(), name)
	}

	keyBody := strings.Split(client.KeyPEM, "\n")[1] // a line of the secret
	corrupt := strings.Replace(ca.CertPEM, "\n", "\n!!!!", 2)
	for name, tc := range map[string]struct {
		c    Config
		want string
	}{
		"CA not PEM":            {ssl(Config{CAPEM: "hello " + keyBody}), "kafka-ca-pem: no certificate"},
		"CA corrupt":            {ssl(Config{CAPEM: corrupt}), "kafka-ca-pem: "},
		"CA is a key":           {ssl(Config{CAPEM: client.KeyPEM}), `kafka-ca-pem: PEM block 1 is a "PRIVATE KEY", want CERTIFICATE`},
		"CA file missing":       {ssl(Config{CAFile: "/nonexistent/ca.pem"}), "kafka-ca-file: open /nonexistent/ca.pem"},
		"CA file and text":      {ssl(Config{CAFile: ca.CertFile, CAPEM: ca.CertPEM}), "kafka-ca-file and kafka-ca-pem: set one, not both"},
		"cert without key":      {ssl(Config{CertPEM: client.CertPEM}), "kafka-cert-pem: set, but no kafka-key-file or kafka-key-pem"},
		"key without cert":      {ssl(Config{KeyFile: client.KeyFile}), "kafka-key-file: set, but no kafka-cert-file or kafka-cert-pem"},
		"cert file and text":    {ssl(Config{CertFile: client.CertFile, CertPEM: client.CertPEM, KeyPEM: client.KeyPEM}), "kafka-cert-file and kafka-cert-pem: set one, not both"},
		"someone else's key":    {ssl(Config{CertPEM: client.CertPEM, KeyPEM: other.KeyPEM}), "kafka-key-pem: not the key of kafka-cert-pem's certificate"},
		"key is a certificate":  {ssl(Config{CertPEM: client.CertPEM, KeyPEM: client.CertPEM}), `kafka-key-pem: PEM block is a "CERTIFICATE", want PRIVATE KEY`},
		"key not PEM":           {ssl(Config{CertPEM: client.CertPEM, KeyPEM: keyBody}), "kafka-key-pem: no private key"},
		"cert not PEM":          {ssl(Config{CertPEM: "x" + keyBody, KeyPEM: client.KeyPEM}), "kafka-cert-pem: no certificate"},
		"TLS on plaintext":      {Config{Brokers: "a:1", SecurityProtocol: "plaintext", CAPEM: ca.CertPEM}, "uses no TLS"},
		"SASL on ssl":           {ssl(Config{SASLMechanism: "PLAIN", SASLUsername: "u", SASLPassword: "p"}), "uses no SASL"},
		"SASL without password": {Config{Brokers: "a:1", SecurityProtocol: "sasl_ssl", SASLMechanism: "PLAIN", SASLUsername: "u"}, "kafka-sasl-password: required"},
		"password without key":  {ssl(Config{KeyPassword: "pw"}), "kafka-key-password: set, but no kafka-key-file or kafka-key-pem"},
	} {
		err := tc.c.Validate()
		require.ErrorContains(t, err, tc.want, name)
		require.NotContains(t, err.Error(), keyBody, "%s: the error shows the secret", name)
	}
}

func TestEncryptedKeyNeedsItsPassword(t *testing.T) {
	ca := tlstest.NewCA(t, "kafka")
	client := ca.Client(t, "alice")
	encrypted := filepath.Join(t.TempDir(), "alice.enc.key")
	out, err := exec.Command("openssl", "pkcs8", "-topk8", "-in", client.KeyFile, "-out", encrypted,
		"-v2", "aes-256-cbc", "-passout", "pass:s3cret").CombinedOutput()
	require.NoError(t, err, "%s", out)
	c := Config{Brokers: "localhost:9093", SecurityProtocol: "ssl", CertFile: client.CertFile, KeyFile: encrypted}
	require.ErrorContains(t, c.Validate(), "kafka-key-file: the key is encrypted; set kafka-key-password")
	c.KeyPassword = "s3cret"
	require.NoError(t, c.Validate())
	require.Equal(t, "s3cret", (*c.ConfigMap(nil))["ssl.key.password"])
}

func TestConfigMapTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "kafka")
	client := ca.Client(t, "alice")
	c := Config{Brokers: "localhost:9093", SecurityProtocol: "SSL", CAPEM: strings.ReplaceAll(ca.CertPEM, "\n", `\n`),
		CertPEM: client.CertPEM, KeyPEM: client.KeyPEM}
	m := *c.ConfigMap(nil)
	require.Equal(t, ca.CertPEM, m["ssl.ca.pem"], "the line breaks restored")
	require.Equal(t, client.CertPEM, m["ssl.certificate.pem"])
	require.Equal(t, client.KeyPEM, m["ssl.key.pem"])
	require.Equal(t, "https", m["ssl.endpoint.identification.algorithm"], "the broker's host name is checked")
	require.NotContains(t, m, "ssl.ca.location")

	c = Config{Brokers: "localhost:9093", SecurityProtocol: "ssl", CAFile: ca.CertFile, CertFile: client.CertFile, KeyFile: client.KeyFile}
	m = *c.ConfigMap(nil)
	require.Equal(t, ca.CertFile, m["ssl.ca.location"])
	require.Equal(t, client.CertFile, m["ssl.certificate.location"])
	require.Equal(t, client.KeyFile, m["ssl.key.location"])
	require.NotContains(t, m, "ssl.ca.pem")
}

// Secrets given by environment never show in -h (the environment sets
// values, not defaults) nor in a printed Config.
func TestSecretsStayOutOfHelpAndPrints(t *testing.T) {
	ca := tlstest.NewCA(t, "kafka")
	client := ca.Client(t, "alice")
	keyBody := strings.Split(client.KeyPEM, "\n")[1]
	t.Setenv("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
	t.Setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
	t.Setenv("KAFKA_SASL_USERNAME", "alice")
	t.Setenv("KAFKA_SASL_PASSWORD", "pa55word-in-env")
	t.Setenv("KAFKA_CA_PEM", strings.ReplaceAll(ca.CertPEM, "\n", `\n`))
	t.Setenv("KAFKA_CERT_PEM", client.CertPEM)
	keyFile := filepath.Join(t.TempDir(), "key")
	require.NoError(t, os.WriteFile(keyFile, []byte(client.KeyPEM), 0o600))
	t.Setenv("KAFKA_KEY_PEM_FILE", keyFile)

	var c Config
	fs := flag.NewFlagSet("svc run", flag.ContinueOnError)
	var help bytes.Buffer
	fs.SetOutput(&help)
	c.RegisterFlags(fs)
	require.ErrorIs(t, config.Parse(fs, "SVC", []string{"-h"}), flag.ErrHelp)
	require.Equal(t, "pa55word-in-env", c.SASLPassword, "the environment was read")
	require.Equal(t, client.KeyPEM, NormalizePEM(c.KeyPEM), "KAFKA_KEY_PEM_FILE was read")
	require.NoError(t, c.Validate())
	require.Contains(t, help.String(), "-kafka-ca-pem")
	for _, out := range []string{help.String(), c.String()} {
		require.NotContains(t, out, "pa55word-in-env")
		require.NotContains(t, out, keyBody)
		require.NotContains(t, out, "BEGIN")
	}
	require.Equal(t, "brokers=127.0.0.1:59092 security_protocol=sasl_ssl sasl_mechanism=SCRAM-SHA-512 sasl_username=alice ca=pem client_cert=pem", c.String())
}
