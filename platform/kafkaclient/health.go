package kafkaclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.uber.org/zap"
)

// RefusedError is a connection to Kafka that waiting will not fix: the
// broker refused the credentials, or TLS failed (an untrusted certificate,
// a host name it does not list, a client certificate the broker refused).
type RefusedError struct {
	Broker string // host:port, as the client dialled it
	Cause  string // what is wrong, in words an operator acts on
	Detail string // the client library's own words, without timings
}

func (e *RefusedError) Error() string {
	s := "Kafka broker " + e.Broker + ": " + e.Cause
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

// Watcher follows a Kafka client's error events. A refusal becomes the
// client's cause of failure, logged once as one error line until it changes
// or a request succeeds again, and returned by Check for /readyz. Other
// client errors (a broker down) are logged as warnings, as they come.
type Watcher struct {
	cfg    Config
	logger *zap.Logger

	mu     sync.Mutex
	cause  *RefusedError
	logged string // the refusal last logged
}

// NewWatcher returns a watcher of clients configured by cfg; logger may be
// nil (nothing is logged).
func NewWatcher(cfg Config, logger *zap.Logger) *Watcher {
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Watcher{cfg: cfg, logger: logger}
}

// Err is the current refusal, or nil.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cause == nil {
		return nil
	}
	return w.cause
}

// Check is a readiness check: probe asks the broker something. While it
// fails the current refusal, if any, is the reason; once it succeeds the
// refusal is forgotten.
func (w *Watcher) Check(probe func(ctx context.Context) error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		err := probe(ctx)
		if err == nil {
			w.mu.Lock()
			w.cause, w.logged = nil, ""
			w.mu.Unlock()
			return nil
		}
		if cause := w.Err(); cause != nil {
			return cause
		}
		return fmt.Errorf("reaching Kafka: %w", err)
	}
}

// Report takes an error of a request (EnsureTopic's, say): a refusal in it
// becomes the cause; it says whether there was one.
func (w *Watcher) Report(err error) bool {
	var refused *RefusedError
	if !errors.As(err, &refused) {
		return false
	}
	w.set(refused)
	return true
}

// librdkafka's messages start with the broker ("sasl_ssl://host:port/id: ")
// and end with timings ("(after 3ms in state X, 1 identical error(s) suppressed)").
var (
	brokerPrefix = regexp.MustCompile(`^[a-z_]+://([^/ ]+)/[^:]*: `)
	timingSuffix = regexp.MustCompile(`\s*\(after \d.*\)\s*$`)
)

// Observe classifies one error event of the client.
func (w *Watcher) Observe(e kafka.Error) {
	msg := e.Error()
	broker := ""
	if m := brokerPrefix.FindStringSubmatch(msg); m != nil {
		broker, msg = m[1], msg[len(m[0]):]
	}
	msg = timingSuffix.ReplaceAllString(msg, "")
	lower := strings.ToLower(msg)
	switch {
	case e.Code() == kafka.ErrAuthentication || e.Code() == kafka.ErrSaslAuthenticationFailed:
		w.set(&RefusedError{Broker: broker, Detail: msg, Cause: fmt.Sprintf(
			"authentication failed for SASL %s user %q: check kafka-sasl-username and kafka-sasl-password", w.cfg.SASLMechanism, w.cfg.SASLUsername)})
	case strings.Contains(lower, "certificate verify failed"):
		w.mu.Lock()
		known := w.cause != nil && w.cause.Broker == broker && strings.HasPrefix(w.cause.Cause, "TLS: ")
		w.mu.Unlock()
		if !known {
			w.set(&RefusedError{Broker: broker, Detail: msg, Cause: "TLS: " + w.diagnose(broker)})
		}
	case strings.Contains(lower, "alert bad certificate") || strings.Contains(lower, "alert certificate required") ||
		strings.Contains(lower, "alert unknown ca") || strings.Contains(lower, "alert certificate unknown"):
		cause := "TLS: the broker refused this client's certificate"
		if w.cfg.CertFile == "" && w.cfg.CertPEM == "" {
			cause = "TLS: the broker requires a client certificate; set kafka-cert-file/kafka-key-file or kafka-cert-pem/kafka-key-pem"
		}
		w.set(&RefusedError{Broker: broker, Detail: msg, Cause: cause})
	case e.Code() == kafka.ErrSsl:
		w.set(&RefusedError{Broker: broker, Detail: msg, Cause: "TLS handshake failed"})
	case e.Code() == kafka.ErrAllBrokersDown && w.Err() != nil:
		// The refusal already logged is why.
	default:
		w.logger.Warn("Kafka client error", zap.String("code", e.Code().String()), zap.Error(e))
	}
}

// set makes r the cause, logging it unless it is the one already logged.
func (w *Watcher) set(r *RefusedError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cause = r
	key := r.Broker + "\x00" + r.Cause
	if key == w.logged {
		return
	}
	w.logged = key
	w.logger.Error("Kafka refused the connection: "+r.Cause, zap.String("broker", r.Broker), zap.String("detail", r.Detail))
}

// diagnoseTimeout bounds the handshake diagnose makes.
const diagnoseTimeout = 5 * time.Second

// diagnose says why broker's certificate fails verification: librdkafka
// says only "certificate verify failed", whether the CA is wrong or the
// host name. It makes a handshake of its own with the same trust anchors
// and returns the reason in words.
func (w *Watcher) diagnose(broker string) string {
	const unknown = "the broker's certificate could not be verified"
	host, _, err := net.SplitHostPort(broker)
	if err != nil {
		return unknown
	}
	var roots *x509.CertPool // nil: the system's, as librdkafka without a CA
	anchor := "the system's CAs (neither kafka-ca-file nor kafka-ca-pem is set)"
	if _, text, err := material(w.cfg.CAFile, w.cfg.CAPEM, "kafka-ca-file", "kafka-ca-pem"); err == nil && text != "" {
		roots = x509.NewCertPool()
		roots.AppendCertsFromPEM([]byte(text))
		anchor = "the CA of kafka-ca-file"
		if w.cfg.CAPEM != "" {
			anchor = "the CA of kafka-ca-pem"
		}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: diagnoseTimeout}, "tcp", broker,
		&tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12})
	if err == nil {
		_ = conn.Close()
		return unknown
	}
	var (
		hostErr    x509.HostnameError
		authErr    x509.UnknownAuthorityError
		invalidErr x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &hostErr):
		return fmt.Sprintf("the broker's certificate is not valid for the host name %s it was reached by (%s); connect by a name the certificate lists", host, hostErr.Error())
	case errors.As(err, &authErr):
		return "the broker's certificate is not signed by a CA this client trusts: " + anchor
	case errors.As(err, &invalidErr) && invalidErr.Reason == x509.Expired:
		return "the broker's certificate has expired or is not yet valid"
	}
	return unknown
}
