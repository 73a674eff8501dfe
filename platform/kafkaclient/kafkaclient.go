// Package kafkaclient holds the Kafka connection settings every service
// shares (brokers, TLS, SASL) and turns them into librdkafka configuration.
package kafkaclient

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Config is how a service reaches Kafka.
type Config struct {
	Brokers          string
	SecurityProtocol string // plaintext, ssl, sasl_plaintext, sasl_ssl
	SASLMechanism    string // PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	SASLUsername     string
	SASLPassword     string
	CAFile           string
}

// RegisterFlags adds the shared kafka-* flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Brokers, "kafka-brokers", "127.0.0.1:59092", "comma-separated Kafka bootstrap servers (env KAFKA_BROKERS)")
	fs.StringVar(&c.SecurityProtocol, "kafka-security-protocol", "plaintext", "plaintext, ssl, sasl_plaintext or sasl_ssl")
	fs.StringVar(&c.SASLMechanism, "kafka-sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	fs.StringVar(&c.SASLUsername, "kafka-sasl-username", "", "SASL username")
	fs.StringVar(&c.SASLPassword, "kafka-sasl-password", "", "SASL password")
	fs.StringVar(&c.CAFile, "kafka-ca-file", "", "PEM file of the CA that signed the brokers' certificates")
}

// Validate reports the first setting that cannot work, naming it.
func (c Config) Validate() error {
	if strings.TrimSpace(c.Brokers) == "" {
		return errors.New("kafka-brokers: empty; want host:port[,host:port...]")
	}
	for _, b := range strings.Split(c.Brokers, ",") {
		b = strings.TrimSpace(b)
		if i := strings.LastIndex(b, ":"); i <= 0 || i == len(b)-1 {
			return fmt.Errorf("kafka-brokers: %q is not host:port", b)
		}
	}
	sasl := false
	switch strings.ToLower(c.SecurityProtocol) {
	case "plaintext", "ssl":
	case "sasl_plaintext", "sasl_ssl":
		sasl = true
	default:
		return fmt.Errorf("kafka-security-protocol: %q; want plaintext, ssl, sasl_plaintext or sasl_ssl", c.SecurityProtocol)
	}
	if sasl {
		switch c.SASLMechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			return fmt.Errorf("kafka-sasl-mechanism: %q; want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism)
		}
		if c.SASLUsername == "" {
			return errors.New("kafka-sasl-username: required with SASL")
		}
	}
	if c.CAFile != "" {
		if _, err := os.Stat(c.CAFile); err != nil {
			return fmt.Errorf("kafka-ca-file: %w", err)
		}
	}
	return nil
}

// ConfigMap returns librdkafka settings for these connection settings plus extra.
func (c Config) ConfigMap(extra kafka.ConfigMap) *kafka.ConfigMap {
	m := kafka.ConfigMap{
		"bootstrap.servers": c.Brokers,
		"security.protocol": strings.ToLower(c.SecurityProtocol),
	}
	if c.SASLMechanism != "" {
		m["sasl.mechanism"] = c.SASLMechanism
		m["sasl.username"] = c.SASLUsername
		m["sasl.password"] = c.SASLPassword
	}
	if c.CAFile != "" {
		m["ssl.ca.location"] = c.CAFile
	}
	for k, v := range extra {
		m[k] = v
	}
	return &m
}

// EnsureTopic creates topic with the given partitions unless it exists.
func EnsureTopic(ctx context.Context, c Config, topic string, partitions int) error {
	admin, err := kafka.NewAdminClient(c.ConfigMap(nil))
	if err != nil {
		return fmt.Errorf("creating Kafka admin client: %w", err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := admin.CreateTopics(ctx, []kafka.TopicSpecification{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: -1, // broker default
	}})
	if err != nil {
		return fmt.Errorf("creating topic %s: %w", topic, err)
	}
	for _, r := range res {
		if code := r.Error.Code(); code != kafka.ErrNoError && code != kafka.ErrTopicAlreadyExists {
			return fmt.Errorf("creating topic %s: %w", topic, r.Error)
		}
	}
	return nil
}
