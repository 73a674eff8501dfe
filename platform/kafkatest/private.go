package kafkatest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sitewatch/sitewatch/platform/kafkaclient"
	"github.com/sitewatch/sitewatch/platform/porttest"
)

// PrivateOptions are what a private broker has beyond a plaintext listener.
type PrivateOptions struct {
	// TLSDir holds ca.pem, broker.crt and broker.key: the broker then also
	// listens with SASL_SSL and with SSL requiring a client certificate.
	TLSDir string
	// SASLUsers are users of SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
	SASLUsers map[string]string
}

// PrivateBroker is a Kafka broker of one test's own, run by scripts/kafka.sh
// beside the shared one, so the test can stop it or give it listeners the
// shared one lacks. Its ports come from porttest.
type PrivateBroker struct {
	Port        int // PLAINTEXT on 127.0.0.1
	SASLSSLPort int // with TLSDir: SASL_SSL, advertised as localhost
	SSLPort     int // with TLSDir: SSL requiring a client certificate, advertised as localhost

	t   testing.TB
	mu  sync.Mutex
	env []string // scripts/kafka.sh's environment: state directory and ports
}

// StartPrivate starts a private broker and stops it when the test ends.
func StartPrivate(t testing.TB, o PrivateOptions) *PrivateBroker {
	t.Helper()
	Config(t) // skips under -short
	if _, err := exec.LookPath("java"); err != nil {
		t.Fatal("java is needed for a private broker (make test installs it: scripts/kafka.sh up)")
	}
	b := &PrivateBroker{t: t}
	// The broker is the test's tool, not its subject: on a loaded machine
	// its start can outlast the script's wait once, so try twice, the second
	// time on other ports and with fresh storage (KRaft's storage records
	// the controller's address).
	var err error
	for attempt := 1; attempt <= 2; attempt++ {
		b.configure(o)
		if err = b.run("up"); err == nil {
			break
		}
		t.Logf("private broker, attempt %d: %v", attempt, err)
		_ = b.run("down") // a broker that started too late must not linger
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.run("down"); err != nil {
			t.Errorf("stopping the private broker: %v", err)
		}
	})
	return b
}

// Config is the plaintext client configuration of the broker.
func (b *PrivateBroker) Config() kafkaclient.Config {
	return kafkaclient.Config{Brokers: "127.0.0.1:" + strconv.Itoa(b.Port), SecurityProtocol: "plaintext"}
}

// Stop stops the broker gracefully, keeping its storage.
func (b *PrivateBroker) Stop() {
	b.t.Helper()
	if err := b.run("down"); err != nil {
		b.t.Fatal(err)
	}
}

// Start starts the broker again after Stop, on the same ports and storage.
func (b *PrivateBroker) Start() {
	b.t.Helper()
	err := b.run("up")
	if err != nil {
		b.t.Logf("restarting the private broker, attempt 1: %v", err)
		err = b.run("up")
	}
	if err != nil {
		b.t.Fatal(err)
	}
}

func (b *PrivateBroker) configure(o PrivateOptions) {
	b.t.Helper()
	b.Port = porttest.Port(b.t)
	env := []string{
		"SITEWATCH_KAFKA_STATE=" + b.t.TempDir(),
		"SITEWATCH_KAFKA_PORT=" + strconv.Itoa(b.Port),
		"SITEWATCH_KAFKA_CONTROLLER_PORT=" + strconv.Itoa(porttest.Port(b.t)),
	}
	if o.TLSDir != "" {
		b.SASLSSLPort, b.SSLPort = porttest.Port(b.t), porttest.Port(b.t)
		users := make([]string, 0, len(o.SASLUsers))
		for u, p := range o.SASLUsers {
			users = append(users, u+":"+p)
		}
		sort.Strings(users)
		env = append(env, "SITEWATCH_KAFKA_TLS_DIR="+o.TLSDir,
			"SITEWATCH_KAFKA_SASL_SSL_PORT="+strconv.Itoa(b.SASLSSLPort),
			"SITEWATCH_KAFKA_SSL_PORT="+strconv.Itoa(b.SSLPort),
			"SITEWATCH_KAFKA_SASL_USERS="+strings.Join(users, ","))
	}
	b.env = env
	for _, kv := range os.Environ() {
		// With KAFKA_BROKERS set the script would only wait for that broker;
		// a user's own SITEWATCH_KAFKA_* must not move this one.
		if !strings.HasPrefix(kv, "KAFKA_BROKERS=") && !strings.HasPrefix(kv, "SITEWATCH_KAFKA_") {
			b.env = append(b.env, kv)
		}
	}
}

func (b *PrivateBroker) run(action string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("bash", filepath.Join(filepath.Dir(file), "..", "..", "scripts", "kafka.sh"), action)
	cmd.Env = b.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("scripts/kafka.sh %s: %w: %s", action, err, out)
	}
	return nil
}
