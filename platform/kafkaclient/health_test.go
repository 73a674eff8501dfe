package kafkaclient

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sitewatch/sitewatch/platform/tlstest"
)

// tlsServer accepts TLS handshakes on loopback with a certificate for
// localhost only, as a broker would.
func tlsServer(t *testing.T, ca *tlstest.CA) string {
	t.Helper()
	srv := ca.Server(t, "broker", "localhost")
	cert, err := tls.X509KeyPair([]byte(srv.CertPEM), []byte(srv.KeyPEM))
	require.NoError(t, err)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).String()
}

func verifyFailed(broker string) kafka.Error {
	return kafka.NewError(kafka.ErrSsl, "sasl_ssl://"+broker+"/bootstrap: SSL handshake failed: error:0A000086:SSL routines::"+
		"certificate verify failed: broker certificate could not be verified (after 3ms in state SSL_HANDSHAKE)", false)
}

// librdkafka says "certificate verify failed" for a wrong CA and a wrong
// host name alike; the watcher finds out which, logs it once and gives it
// to /readyz.
func TestWatcherNamesTheCause(t *testing.T) {
	ca := tlstest.NewCA(t, "kafka")
	addr := tlsServer(t, ca)
	_, port, _ := net.SplitHostPort(addr)
	probe := func(context.Context) error { return errors.New("Local: Broker transport failure") }

	for name, tc := range map[string]struct {
		cfg    Config
		broker string
		want   string
	}{
		"host name": {Config{SecurityProtocol: "sasl_ssl", CAPEM: ca.CertPEM}, addr,
			"TLS: the broker's certificate is not valid for the host name 127.0.0.1 it was reached by"},
		"untrusted CA": {Config{SecurityProtocol: "sasl_ssl", CAFile: tlstest.NewCA(t, "other").CertFile}, "localhost:" + port,
			"TLS: the broker's certificate is not signed by a CA this client trusts: the CA of kafka-ca-file"},
	} {
		core, logs := observer.New(zap.InfoLevel)
		w := NewWatcher(tc.cfg, zap.New(core))
		for range 3 {
			w.Observe(verifyFailed(tc.broker))
			w.Observe(kafka.NewError(kafka.ErrAllBrokersDown, "1/1 brokers are down", false))
		}
		require.Equal(t, 1, logs.Len(), "%s: one line, however often librdkafka retries: %v", name, logs.All())
		require.Contains(t, logs.All()[0].Message, tc.want, name)
		err := w.Check(probe)(context.Background())
		require.ErrorContains(t, err, tc.want, name)
		require.ErrorContains(t, err, "Kafka broker "+tc.broker, name)
	}
}

func TestWatcherAuthentication(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	w := NewWatcher(Config{SecurityProtocol: "sasl_ssl", SASLMechanism: "SCRAM-SHA-512", SASLUsername: "alice", SASLPassword: "pa55"}, zap.New(core))
	for range 3 {
		w.Observe(kafka.NewError(kafka.ErrAuthentication, "sasl_ssl://localhost:9094/bootstrap: SASL authentication error: "+
			"Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 312ms in state AUTH_REQ, 1 identical error(s) suppressed)", false))
	}
	require.Equal(t, 1, logs.Len())
	want := `Kafka broker localhost:9094: authentication failed for SASL SCRAM-SHA-512 user "alice"`
	require.ErrorContains(t, w.Err(), want)
	require.NotContains(t, w.Err().Error(), "pa55")
	require.NotContains(t, w.Err().Error(), "after 312ms", "timings differ per retry")

	// Once a request succeeds the refusal is forgotten; a new one is logged.
	require.NoError(t, w.Check(func(context.Context) error { return nil })(context.Background()))
	require.NoError(t, w.Err())
	w.Observe(kafka.NewError(kafka.ErrTransport, "ssl://localhost:9095/bootstrap: Receive failed: error:0A000412:SSL routines::"+
		"sslv3 alert bad certificate: SSL alert number 42 (after 1ms in state APIVERSION_QUERY)", false))
	require.Equal(t, 2, logs.Len())
	require.ErrorContains(t, w.Err(), "the broker requires a client certificate")

	// A broker that is down is no refusal: a warning, and readiness says what the probe saw.
	w = NewWatcher(Config{}, zap.New(core))
	w.Observe(kafka.NewError(kafka.ErrTransport, "localhost:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused", false))
	require.NoError(t, w.Err())
	require.Equal(t, zap.WarnLevel, logs.All()[2].Level)
	require.EqualError(t, w.Check(func(context.Context) error { return errors.New("Local: Broker transport failure") })(context.Background()),
		"reaching Kafka: Local: Broker transport failure")
}
