// Package kafkaclient holds the Kafka connection settings every service
// shares (brokers, TLS, SASL) and turns them into librdkafka configuration.
package kafkaclient

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Config is how a service reaches Kafka. The TLS material may be given as
// files or as PEM text (a platform's secret store holds text); never both.
// String leaves the secrets out, so a Config is safe to print or log.
type Config struct {
	Brokers          string
	SecurityProtocol string // plaintext, ssl, sasl_plaintext, sasl_ssl
	SASLMechanism    string // PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	SASLUsername     string
	SASLPassword     string
	CAFile           string // PEM file of the CA that signed the brokers' certificates
	CAPEM            string // the same as PEM text
	CertFile         string // client certificate (mTLS), PEM file
	KeyFile          string // its private key, PEM file
	CertPEM          string // client certificate as PEM text
	KeyPEM           string // its private key as PEM text
	KeyPassword      string // the key's password, if it is encrypted
}

// RegisterFlags adds the shared kafka-* flags to fs. Their defaults are
// never taken from the environment (config.Parse sets values, not
// defaults), so -h cannot print a secret.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Brokers, "kafka-brokers", "127.0.0.1:59092", "comma-separated Kafka bootstrap servers (env KAFKA_BROKERS)")
	fs.StringVar(&c.SecurityProtocol, "kafka-security-protocol", "plaintext", "plaintext, ssl, sasl_plaintext or sasl_ssl (env KAFKA_SECURITY_PROTOCOL)")
	fs.StringVar(&c.SASLMechanism, "kafka-sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (env KAFKA_SASL_MECHANISM)")
	fs.StringVar(&c.SASLUsername, "kafka-sasl-username", "", "SASL username (env KAFKA_SASL_USERNAME)")
	fs.StringVar(&c.SASLPassword, "kafka-sasl-password", "", "SASL password; prefer env KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE")
	fs.StringVar(&c.CAFile, "kafka-ca-file", "", "PEM file of the CA that signed the brokers' certificates (env KAFKA_CA_FILE; default: the system's CAs)")
	fs.StringVar(&c.CAPEM, "kafka-ca-pem", "", `the same CA as PEM text, lines separated by newlines or by literal \n (env KAFKA_CA_PEM)`)
	fs.StringVar(&c.CertFile, "kafka-cert-file", "", "PEM file of the client certificate, for brokers that require one (env KAFKA_CERT_FILE)")
	fs.StringVar(&c.KeyFile, "kafka-key-file", "", "PEM file of the client certificate's private key (env KAFKA_KEY_FILE)")
	fs.StringVar(&c.CertPEM, "kafka-cert-pem", "", "the client certificate as PEM text (env KAFKA_CERT_PEM)")
	fs.StringVar(&c.KeyPEM, "kafka-key-pem", "", "the client certificate's private key as PEM text; prefer env KAFKA_KEY_PEM or KAFKA_KEY_PEM_FILE")
	fs.StringVar(&c.KeyPassword, "kafka-key-password", "", "password of an encrypted private key; prefer env KAFKA_KEY_PASSWORD or KAFKA_KEY_PASSWORD_FILE")
}

// String describes the settings without their secrets.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "brokers=%s security_protocol=%s", c.Brokers, strings.ToLower(c.SecurityProtocol))
	if c.SASLMechanism != "" {
		fmt.Fprintf(&b, " sasl_mechanism=%s sasl_username=%s", c.SASLMechanism, c.SASLUsername)
	}
	switch {
	case c.CAFile != "":
		fmt.Fprintf(&b, " ca=file:%s", c.CAFile)
	case c.CAPEM != "":
		b.WriteString(" ca=pem")
	}
	switch {
	case c.CertFile != "":
		fmt.Fprintf(&b, " client_cert=file:%s", c.CertFile)
	case c.CertPEM != "":
		b.WriteString(" client_cert=pem")
	}
	return b.String()
}

// Validate reports every setting that cannot work, each naming its flag.
// PEM text and files are parsed: a bad one is named, its content never shown.
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Brokers) == "" {
		errs = append(errs, errors.New("kafka-brokers: empty; want host:port[,host:port...]"))
	}
	for _, b := range strings.Split(c.Brokers, ",") {
		b = strings.TrimSpace(b)
		if i := strings.LastIndex(b, ":"); b != "" && (i <= 0 || i == len(b)-1) {
			errs = append(errs, fmt.Errorf("kafka-brokers: %q is not host:port", b))
			break
		}
	}
	sasl, tls := false, false
	switch strings.ToLower(c.SecurityProtocol) {
	case "plaintext":
	case "ssl":
		tls = true
	case "sasl_plaintext":
		sasl = true
	case "sasl_ssl":
		sasl, tls = true, true
	default:
		errs = append(errs, fmt.Errorf("kafka-security-protocol: %q; want plaintext, ssl, sasl_plaintext or sasl_ssl", c.SecurityProtocol))
	}
	if sasl {
		switch c.SASLMechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			errs = append(errs, fmt.Errorf("kafka-sasl-mechanism: %q; want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism))
		}
		if c.SASLUsername == "" {
			errs = append(errs, errors.New("kafka-sasl-username: required with SASL"))
		}
		if c.SASLPassword == "" {
			errs = append(errs, errors.New("kafka-sasl-password: required with SASL"))
		}
	} else if c.SASLMechanism != "" || c.SASLUsername != "" || c.SASLPassword != "" {
		errs = append(errs, fmt.Errorf("kafka-sasl-*: set, but kafka-security-protocol %q uses no SASL; want sasl_ssl", c.SecurityProtocol))
	}
	if !tls && c.usesTLSMaterial() {
		errs = append(errs, fmt.Errorf("kafka-ca-*/kafka-cert-*/kafka-key-*: set, but kafka-security-protocol %q uses no TLS; want ssl or sasl_ssl", c.SecurityProtocol))
	}
	if err := c.validateTLS(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c Config) usesTLSMaterial() bool {
	return c.CAFile != "" || c.CAPEM != "" || c.CertFile != "" || c.KeyFile != "" || c.CertPEM != "" || c.KeyPEM != "" || c.KeyPassword != ""
}

// ConfigMap returns librdkafka settings for these connection settings plus
// extra. PEM text is passed as text (ssl.ca.pem, ssl.certificate.pem,
// ssl.key.pem) with its line breaks restored; files by their paths. The
// broker's host name is always checked against its certificate.
func (c Config) ConfigMap(extra kafka.ConfigMap) *kafka.ConfigMap {
	m := kafka.ConfigMap{
		"bootstrap.servers": c.Brokers,
		"security.protocol": strings.ToLower(c.SecurityProtocol),
		// librdkafka's own log goes to stderr, a line per retry; its errors
		// also arrive as events, which a Watcher logs once per cause.
		"log_level": 2,
	}
	if c.SASLMechanism != "" {
		m["sasl.mechanism"] = c.SASLMechanism
		m["sasl.username"] = c.SASLUsername
		m["sasl.password"] = c.SASLPassword
	}
	if strings.HasSuffix(strings.ToLower(c.SecurityProtocol), "ssl") {
		m["ssl.endpoint.identification.algorithm"] = "https"
	}
	set := func(key, value string) {
		if value != "" {
			m[key] = value
		}
	}
	set("ssl.ca.location", c.CAFile)
	set("ssl.certificate.location", c.CertFile)
	set("ssl.key.location", c.KeyFile)
	set("ssl.key.password", c.KeyPassword)
	if c.CAPEM != "" {
		m["ssl.ca.pem"] = NormalizePEM(c.CAPEM)
	}
	if c.CertPEM != "" {
		m["ssl.certificate.pem"] = NormalizePEM(c.CertPEM)
	}
	if c.KeyPEM != "" {
		m["ssl.key.pem"] = NormalizePEM(c.KeyPEM)
	}
	for k, v := range extra {
		m[k] = v
	}
	return &m
}

// Topic is how a topic sitewatch creates is laid out.
type Topic struct {
	Partitions int
	// Replication is its replicas, at most the cluster's brokers (a
	// single development broker gets 1); MinInsync the replicas in sync a
	// write needs (min.insync.replicas), at most Replication-1 so one
	// broker down never stops writes, and 1 on a single broker.
	Replication, MinInsync int
}

// DefaultTopic is a topic of partitions as production clusters want it:
// three replicas, two in sync for a write.
func DefaultTopic(partitions int) Topic {
	return Topic{Partitions: partitions, Replication: 3, MinInsync: 2}
}

// fit is spec on a cluster of brokers.
func (spec Topic) fit(brokers int) Topic {
	spec.Replication = max(1, min(spec.Replication, brokers))
	spec.MinInsync = max(1, min(spec.MinInsync, spec.Replication-1))
	return spec
}

// EnsureTopic creates topic with the given partitions (DefaultTopic)
// unless it exists.
func EnsureTopic(ctx context.Context, c Config, topic string, partitions int) error {
	return CreateTopic(ctx, c, topic, DefaultTopic(partitions))
}

// CreateTopic creates topic laid out as spec, fitted to the cluster's
// brokers, unless it exists (a topic that exists is left as it is). A
// broker that refuses the connection (authentication, TLS) is named in the
// error with the cause its client reported.
func CreateTopic(ctx context.Context, c Config, topic string, spec Topic) error {
	p, err := kafka.NewProducer(c.ConfigMap(nil))
	if err != nil {
		return fmt.Errorf("creating Kafka admin client: %w", err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// A refusal will not go away by waiting: stop at once, saying why.
	causes := NewWatcher(c, nil)
	go func() {
		for ev := range p.Events() {
			if e, ok := ev.(kafka.Error); ok {
				if causes.Observe(e); causes.Err() != nil {
					cancel()
				}
			}
		}
	}()
	admin, err := kafka.NewAdminClientFromProducer(p)
	if err != nil {
		return fmt.Errorf("creating Kafka admin client: %w", err)
	}
	defer admin.Close()
	cluster, err := admin.DescribeCluster(ctx)
	if err != nil {
		if cause := causes.Err(); cause != nil {
			return fmt.Errorf("creating topic %s: %w", topic, cause)
		}
		return fmt.Errorf("creating topic %s: reading the cluster's brokers: %w", topic, err)
	}
	spec = spec.fit(len(cluster.Nodes))
	res, err := admin.CreateTopics(ctx, []kafka.TopicSpecification{{
		Topic: topic, NumPartitions: spec.Partitions, ReplicationFactor: spec.Replication,
		Config: map[string]string{"min.insync.replicas": strconv.Itoa(spec.MinInsync)},
	}})
	if err != nil {
		if cause := causes.Err(); cause != nil {
			return fmt.Errorf("creating topic %s: %w", topic, cause)
		}
		return fmt.Errorf("creating topic %s: %w", topic, err)
	}
	for _, r := range res {
		if code := r.Error.Code(); code != kafka.ErrNoError && code != kafka.ErrTopicAlreadyExists {
			return fmt.Errorf("creating topic %s: %w", topic, r.Error)
		}
	}
	return nil
}
