package kafkaclient

import (
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	ok := Config{Brokers: "127.0.0.1:9092, b:9093", SecurityProtocol: "plaintext"}
	require.NoError(t, ok.Validate())
	for name, tc := range map[string]struct {
		c    Config
		want string
	}{
		"empty brokers": {Config{SecurityProtocol: "plaintext"}, "kafka-brokers: empty"},
		"no port":       {Config{Brokers: "localhost", SecurityProtocol: "plaintext"}, `kafka-brokers: "localhost" is not host:port`},
		"bad protocol":  {Config{Brokers: "a:1", SecurityProtocol: "tls"}, `kafka-security-protocol: "tls"`},
		"bad mechanism": {Config{Brokers: "a:1", SecurityProtocol: "sasl_ssl", SASLMechanism: "GSSAPI"}, "kafka-sasl-mechanism"},
		"no user":       {Config{Brokers: "a:1", SecurityProtocol: "sasl_ssl", SASLMechanism: "PLAIN"}, "kafka-sasl-username: required"},
		"missing CA":    {Config{Brokers: "a:1", SecurityProtocol: "ssl", CAFile: "/nonexistent/ca.pem"}, "kafka-ca-file"},
	} {
		require.ErrorContains(t, tc.c.Validate(), tc.want, name)
	}
}

func TestConfigMap(t *testing.T) {
	c := Config{Brokers: "a:1", SecurityProtocol: "SASL_SSL", SASLMechanism: "PLAIN", SASLUsername: "u", SASLPassword: "p"}
	m := *c.ConfigMap(kafka.ConfigMap{"acks": "all"})
	require.Equal(t, "a:1", m["bootstrap.servers"])
	require.Equal(t, "sasl_ssl", m["security.protocol"])
	require.Equal(t, "PLAIN", m["sasl.mechanism"])
	require.Equal(t, "all", m["acks"])
}
