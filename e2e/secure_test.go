package e2e

// Secure connections, tested for real: the whole pipeline over Kafka
// SASL_SSL (SCRAM-SHA-512, the CA given as PEM text with literal \n, as a
// platform's secret store holds it) and PostgreSQL with sslmode=verify-full;
// a wrong password, an untrusted CA and a host name the certificate does
// not list each give one log line naming the cause and a /readyz reason;
// mTLS, SASL PLAIN and SCRAM-SHA-256 at client level.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/db"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/kafkaclient"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/platform/porttest"
	"github.com/sitewatch/sitewatch/platform/tlstest"
)

func TestSecureConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and a database of its own: skipped with -short")
	}
	ca := tlstest.NewCA(t, "sitewatch-test")
	pgPort := startTLSPostgres(t, ca)
	broker := startSecureKafka(t, ca)
	dbURL := fmt.Sprintf("postgres://postgres@localhost:%s/postgres?sslmode=verify-full&sslrootcert=%s", pgPort, ca.CertFile)
	require.NoError(t, db.Migrate(context.Background(), dbURL, zap.NewNop()))
	// The refused relays get an outbox of their own: one allowed another
	// topic would park the pipeline's rows.
	conn, err := pgx.Connect(context.Background(), dbURL)
	require.NoError(t, err)
	_, err = conn.Exec(context.Background(), "CREATE DATABASE refused")
	require.NoError(t, err)
	require.NoError(t, conn.Close(context.Background()))
	refusedURL := strings.Replace(dbURL, "/postgres?", "/refused?", 1)
	require.NoError(t, db.Migrate(context.Background(), refusedURL, zap.NewNop()))

	// The CA as one line with literal \n, as platforms store it.
	caText := strings.ReplaceAll(ca.CertPEM, "\n", `\n`)
	scram512 := kafkaclient.Config{Brokers: broker.SASLSSL, SecurityProtocol: "sasl_ssl", SASLMechanism: "SCRAM-SHA-512",
		SASLUsername: "alice", SASLPassword: kafkaUsers["alice"], CAPEM: caText}
	kafkaEnv := func(c kafkaclient.Config) []string {
		return []string{"KAFKA_BROKERS=" + c.Brokers, "KAFKA_SECURITY_PROTOCOL=" + c.SecurityProtocol,
			"KAFKA_SASL_MECHANISM=" + c.SASLMechanism, "KAFKA_SASL_USERNAME=" + c.SASLUsername,
			"KAFKA_SASL_PASSWORD=" + c.SASLPassword, "KAFKA_CA_PEM=" + c.CAPEM, "KAFKA_CA_FILE=" + c.CAFile}
	}

	t.Run("pipeline over SASL_SSL and verify-full", func(t *testing.T) {
		t.Parallel()
		pool, err := pgxpool.New(context.Background(), dbURL)
		require.NoError(t, err)
		defer pool.Close()
		site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "all good") }))
		defer site.Close()
		topic := "secure.checks"
		env := append([]string{"DATABASE_URL=" + dbURL, "LOG_FORMAT=console"}, kafkaEnv(scram512)...)
		code, out := run(t, env, "monitor", "sites", "add", site.URL, "--regex", "good", "--interval", "1s", "--topic", topic)
		require.Equal(t, 0, code, out)

		ops := map[string]string{"monitor": porttest.Addr(t), "relay": porttest.Addr(t), "sink": porttest.Addr(t)}
		monitor := start(t, "monitor", env, "run", "-ops-addr", ops["monitor"], "-reload-interval", "500ms")
		sink := start(t, "sink", env, "-ops-addr", ops["sink"], "-topic", topic, "-group-id", "e2e-secure", "-batch-wait", "50ms")
		relay := start(t, "relay", env, "-ops-addr", ops["relay"], "-poll-interval", "50ms", "-topics", topic+","+checkevent.IncidentTopic)

		require.Eventually(t, func() bool {
			return count(t, pool, "SELECT count(*) FROM stats WHERE url = $1 AND regex_matched", site.URL) >= 2
		}, 60*time.Second, 200*time.Millisecond, "checks flow monitor → PostgreSQL (TLS) → relay → Kafka (SASL_SSL) → sink → stats")
		for name, addr := range ops {
			status, checks := readiness(t, addr)
			require.Equal(t, http.StatusOK, status, "%s: %v", name, checks)
		}
		var published int
		require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE published").Scan(&published))
		require.Positive(t, published)
		for _, p := range []*process{monitor, relay, sink} {
			p.stop(t, 30*time.Second)
			require.NotContains(t, p.out.String(), "Kafka refused")
			require.NotContains(t, p.out.String(), kafkaUsers["alice"], "%s logs the password", p.name)
			require.NotContains(t, p.out.String(), strings.Split(ca.CertPEM, "\n")[1], "%s logs the CA", p.name)
		}
	})

	t.Run("refusals are named once and on /readyz", func(t *testing.T) {
		t.Parallel()
		base := []string{"DATABASE_URL=" + refusedURL, "LOG_FORMAT=console"}
		wrongPassword := scram512
		wrongPassword.SASLPassword = "not-" + kafkaUsers["alice"]
		untrusted := scram512
		untrusted.CAPEM = tlstest.NewCA(t, "someone-else").CertPEM
		wrongHost := scram512
		wrongHost.Brokers = "127.0.0.1:" + broker.Port // the certificate names localhost only
		for _, tc := range []struct {
			name, service string
			cfg           kafkaclient.Config
			want          string
		}{
			{"wrong password", "relay", wrongPassword, `authentication failed for SASL SCRAM-SHA-512 user "alice"`},
			{"untrusted CA", "sink", untrusted, "not signed by a CA this client trusts: the CA of kafka-ca-pem"},
			{"wrong host name", "relay", wrongHost, "not valid for the host name 127.0.0.1"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				ops := porttest.Addr(t)
				args := []string{"-ops-addr", ops}
				if tc.service == "relay" {
					args = append(args, "-topics", "secure.refused")
				} else {
					args = append(args, "-topic", "secure.refused", "-group-id", "e2e-refused")
				}
				p := start(t, tc.service, append(append([]string{}, base...), kafkaEnv(tc.cfg)...), args...)
				var reason string
				require.Eventually(t, func() bool {
					status, checks := readiness(t, ops)
					reason = checks["kafka"]
					return status == http.StatusServiceUnavailable && strings.Contains(reason, tc.want)
				}, 40*time.Second, 200*time.Millisecond, "/readyz names the cause")
				t.Logf("%s: /readyz kafka: %s", tc.name, reason)
				// Asked again: still the cause, while librdkafka keeps retrying.
				_, checks := readiness(t, ops)
				require.Contains(t, checks["kafka"], tc.want)
				out := p.out.String()
				require.Equal(t, 1, strings.Count(out, "Kafka refused the connection"), "one line for the cause:\n%s", out)
				require.Equal(t, 1, strings.Count(out, tc.want), "one line for the cause:\n%s", out)
				require.NotContains(t, out, "|FAIL|", "librdkafka's own log lines stay out")
				require.NotContains(t, out, kafkaUsers["alice"])
				p.stop(t, 30*time.Second)
			})
		}
	})

	t.Run("mTLS, PLAIN and SCRAM-SHA-256 round trips", func(t *testing.T) {
		t.Parallel()
		client := ca.Client(t, "sitewatch-relay")
		for name, cfg := range map[string]kafkaclient.Config{
			"mTLS, certificate and key as text": {Brokers: broker.SSL, SecurityProtocol: "ssl", CAFile: ca.CertFile,
				CertPEM: client.CertPEM, KeyPEM: strings.ReplaceAll(client.KeyPEM, "\n", `\n`)},
			"mTLS, files": {Brokers: broker.SSL, SecurityProtocol: "ssl", CAFile: ca.CertFile, CertFile: client.CertFile, KeyFile: client.KeyFile},
			"SASL PLAIN": {Brokers: broker.SASLSSL, SecurityProtocol: "sasl_ssl", SASLMechanism: "PLAIN",
				SASLUsername: "bob", SASLPassword: kafkaUsers["bob"], CAFile: ca.CertFile},
			"SASL SCRAM-SHA-256": {Brokers: broker.SASLSSL, SecurityProtocol: "sasl_ssl", SASLMechanism: "SCRAM-SHA-256",
				SASLUsername: "bob", SASLPassword: kafkaUsers["bob"], CAPEM: ca.CertPEM},
		} {
			require.NoError(t, cfg.Validate(), name)
			roundTrip(t, name, cfg)
		}
		// Without a client certificate the SSL listener refuses, and says so.
		noCert := kafkaclient.Config{Brokers: broker.SSL, SecurityProtocol: "ssl", CAFile: ca.CertFile}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := kafkaclient.EnsureTopic(ctx, noCert, "secure.no-cert", 1)
		require.ErrorContains(t, err, "the broker requires a client certificate")
		// PLAIN with a wrong password: refused, named.
		bad := kafkaclient.Config{Brokers: broker.SASLSSL, SecurityProtocol: "sasl_ssl", SASLMechanism: "PLAIN",
			SASLUsername: "bob", SASLPassword: "wrong", CAFile: ca.CertFile}
		err = kafkaclient.EnsureTopic(ctx, bad, "secure.bad-plain", 1)
		require.ErrorContains(t, err, `authentication failed for SASL PLAIN user "bob"`)
	})

	t.Run("PostgreSQL verify-full refusals", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		other := tlstest.NewCA(t, "someone-else")
		for name, tc := range map[string]struct{ url, want string }{
			"wrong host name": {fmt.Sprintf("postgres://postgres@127.0.0.1:%s/postgres?sslmode=verify-full&sslrootcert=%s", pgPort, ca.CertFile),
				"cannot validate certificate for 127.0.0.1"},
			"untrusted CA": {fmt.Sprintf("postgres://postgres@localhost:%s/postgres?sslmode=verify-full&sslrootcert=%s", pgPort, other.CertFile),
				"certificate signed by unknown authority"},
			"no TLS": {fmt.Sprintf("postgres://postgres@localhost:%s/postgres?sslmode=disable", pgPort),
				"no pg_hba.conf entry"},
		} {
			_, err := pgx.Connect(ctx, tc.url)
			require.ErrorContains(t, err, tc.want, name)
		}
		// Client certificates: certuser logs in with one (CN=certuser), and only with one.
		client := ca.Client(t, "certuser")
		certURL := fmt.Sprintf("postgres://certuser@localhost:%s/postgres?sslmode=verify-full&sslrootcert=%s&sslcert=%s&sslkey=%s",
			pgPort, ca.CertFile, client.CertFile, client.KeyFile)
		conn, err := pgx.Connect(ctx, certURL)
		require.NoError(t, err, "a client certificate through the URL")
		var who string
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_user").Scan(&who))
		require.Equal(t, "certuser", who)
		require.NoError(t, conn.Close(ctx))
		_, err = pgx.Connect(ctx, fmt.Sprintf("postgres://certuser@localhost:%s/postgres?sslmode=verify-full&sslrootcert=%s", pgPort, ca.CertFile))
		require.ErrorContains(t, err, "connection requires a valid client certificate", "no certificate, no login")

		// A service given the wrong host name says why on /readyz.
		ops := porttest.Addr(t)
		wrongHost := fmt.Sprintf("postgres://postgres@127.0.0.1:%s/postgres?sslmode=verify-full&sslrootcert=%s", pgPort, ca.CertFile)
		p := start(t, "monitor", []string{"DATABASE_URL=" + wrongHost, "LOG_FORMAT=console"}, "run", "-ops-addr", ops)
		require.Eventually(t, func() bool {
			status, checks := readiness(t, ops)
			return status == http.StatusServiceUnavailable && strings.Contains(checks["postgres"], "cannot validate certificate for 127.0.0.1")
		}, 30*time.Second, 200*time.Millisecond, "/readyz names the certificate problem")
		p.stop(t, 30*time.Second)
	})
}

// roundTrip creates a topic over cfg, produces a message and reads it back.
func roundTrip(t *testing.T, name string, cfg kafkaclient.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := "secure." + strings.NewReplacer(" ", "-", ",", "").Replace(strings.ToLower(name))
	require.NoError(t, kafkaclient.EnsureTopic(ctx, cfg, topic, 1), name)
	p, err := kafka.NewProducer(cfg.ConfigMap(kafka.ConfigMap{"acks": "all", "message.timeout.ms": 20000}))
	require.NoError(t, err)
	defer p.Close()
	delivered := make(chan kafka.Event, 1)
	require.NoError(t, p.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
		Value: []byte(name)}, delivered))
	select {
	case ev := <-delivered:
		require.NoError(t, ev.(*kafka.Message).TopicPartition.Error, name)
	case <-ctx.Done():
		t.Fatalf("%s: no delivery report", name)
	}
	got := kafkatest.ConsumeUntilIdle(t, cfg, topic, 100*time.Millisecond, 20*time.Second)
	require.Len(t, got, 1, name)
	require.Equal(t, name, string(got[0].Value))
}
