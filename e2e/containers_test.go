package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/notify"
	"github.com/sitewatch/sitewatch/platform/porttest"
)

// The compose project of the containers test: its own name, network,
// volumes, secrets and host ports, so it never meets a stack a user runs.
const (
	e2eProject = "sitewatch-e2e"
	e2eNetwork = "sitewatch-e2e"
	hookSecret = "e2e-hook-secret"
)

// The services built from deploy/Dockerfile, and what each must show.
var sitewatchServices = []string{"monitor", "relay", "sink"}

// stack drives deploy/docker-compose.yml (with e2e/testdata/compose.e2e.yml)
// through the real docker compose CLI against the real engine.
type stack struct {
	t       *testing.T
	root    string
	secrets string
	env     []string
	ports   map[string]int
	subnet  string
}

// composeAvailable: docker compose v2 answers and the engine runs. Without
// them the test is skipped, unless SITEWATCH_REQUIRE_DOCKER=1 (make test,
// after scripts/docker.sh up) makes that a failure.
func composeAvailable(t *testing.T) {
	t.Helper()
	out, err := exec.Command("docker", "compose", "version", "--short").CombinedOutput()
	if err == nil {
		out, err = exec.Command("docker", "info", "-f", "{{.ServerVersion}}").CombinedOutput()
	}
	if err == nil {
		return
	}
	msg := fmt.Sprintf("docker compose or the Docker engine is not available (scripts/docker.sh up, then eval \"$(scripts/docker.sh env)\"): %v: %s", err, out)
	if os.Getenv("SITEWATCH_REQUIRE_DOCKER") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func newStack(t *testing.T) *stack {
	t.Helper()
	composeAvailable(t)
	require.Zero(t, os.Geteuid(), "the containers test reads the containers' processes through /proc: run it as root")
	s := &stack{t: t, root: repoRoot(t), secrets: t.TempDir(), ports: map[string]int{}}
	// The host ports deploy/docker-compose.yml publishes, by their variables.
	for _, name := range []string{"POSTGRES_HOST_PORT", "KAFKA_HOST_PORT", "MONITOR_HOST_PORT", "RELAY_HOST_PORT",
		"SINK_HOST_PORT", "PROMETHEUS_HOST_PORT", "GRAFANA_HOST_PORT", "SITEWATCH_STATUS_PORT", "SITEWATCH_PING_PORT", "SITEWATCH_PUBLIC_PORT"} {
		s.ports[name] = porttest.Port(t)
	}

	// A clean state: whatever an interrupted run left goes first.
	s.composeQuiet("--profile", "observability", "--profile", "secure", "down", "-v", "--remove-orphans", "--timeout", "5")
	_ = exec.Command("docker", "network", "rm", e2eNetwork).Run()
	s.docker("network", "create", "--label", "org.sitewatch.e2e=containers", e2eNetwork)
	s.subnet = strings.TrimSpace(s.docker("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", e2eNetwork))
	require.NotEmpty(t, s.subnet)

	s.env = append(os.Environ(),
		"SITEWATCH_SECRETS_DIR="+s.secrets,
		"SITEWATCH_E2E_NETWORK="+e2eNetwork,
		// The monitor may check the test's own containers, on the network it made.
		"MONITOR_ALLOW_NETS="+s.subnet,
		"LOG_FORMAT=console",
	)
	for name, port := range s.ports {
		s.env = append(s.env, fmt.Sprintf("%s=%d", name, port))
	}
	out, err := exec.Command(filepath.Join(s.root, "scripts", "secrets.sh"), s.secrets).CombinedOutput()
	require.NoError(t, err, "scripts/secrets.sh: %s", out)

	t.Cleanup(func() {
		if t.Failed() {
			out, _ := s.composeOut("logs", "--no-color", "--tail", "60")
			t.Logf("compose logs:\n%s", out)
		}
		s.composeQuiet("--profile", "observability", "--profile", "secure", "down", "-v", "--remove-orphans", "--timeout", "10")
		_ = exec.Command("docker", "network", "rm", e2eNetwork).Run()
	})
	return s
}

func (s *stack) files() []string {
	return []string{"-p", e2eProject,
		"-f", filepath.Join(s.root, "deploy", "docker-compose.yml"),
		"-f", filepath.Join(s.root, "e2e", "testdata", "compose.e2e.yml")}
}

// composeOut runs docker compose ARGS and returns its output and error.
func (s *stack) composeOut(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append(append([]string{"compose"}, s.files()...), args...)...)
	cmd.Env = s.env
	cmd.Dir = s.root
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// compose runs docker compose ARGS; the test fails if it does.
func (s *stack) compose(args ...string) string {
	s.t.Helper()
	out, err := s.composeOut(args...)
	require.NoError(s.t, err, "docker compose %s:\n%s", strings.Join(args, " "), out)
	return out
}

func (s *stack) composeQuiet(args ...string) {
	if s.env == nil {
		s.env = append(os.Environ(), "SITEWATCH_E2E_NETWORK="+e2eNetwork, "SITEWATCH_SECRETS_DIR="+s.secrets)
	}
	_, _ = s.composeOut(args...)
}

func (s *stack) docker(args ...string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	require.NoError(s.t, err, "docker %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// id is the container of service svc (with -a: also when it has exited).
func (s *stack) id(svc string) string {
	s.t.Helper()
	id := strings.TrimSpace(s.compose("ps", "-a", "-q", svc))
	require.NotEmpty(s.t, id, "no container of %s", svc)
	return id
}

func (s *stack) inspect(svc, format string) string {
	s.t.Helper()
	return strings.TrimSpace(s.docker("inspect", "-f", format, s.id(svc)))
}

// waitHealthy waits until Docker's health check (the binaries' healthcheck
// subcommand; pg_isready and a Kafka API call for the engines) says
// healthy for every service named, and returns how long that took.
func (s *stack) waitHealthy(within time.Duration, svcs ...string) time.Duration {
	s.t.Helper()
	start := time.Now()
	require.Eventually(s.t, func() bool {
		for _, svc := range svcs {
			out, err := s.composeOut("ps", "-q", svc)
			id := strings.TrimSpace(out)
			if err != nil || id == "" {
				return false
			}
			h, err := exec.Command("docker", "inspect", "-f", "{{.State.Health.Status}}", id).Output()
			if err != nil || strings.TrimSpace(string(h)) != "healthy" {
				return false
			}
		}
		return true
	}, within, 250*time.Millisecond, "%v healthy within %s", svcs, within)
	return time.Since(start)
}

func (s *stack) secret(name string) string {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.secrets, name))
	require.NoError(s.t, err)
	return string(b)
}

func (s *stack) pool() *pgxpool.Pool {
	s.t.Helper()
	url := fmt.Sprintf("postgres://sitewatch:%s@127.0.0.1:%d/sitewatch?sslmode=disable&connect_timeout=5",
		s.secret("postgres_password"), s.ports["POSTGRES_HOST_PORT"])
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(s.t, err)
	s.t.Cleanup(pool.Close)
	return pool
}

// hostPort is the 127.0.0.1 port Docker published for svc's container port.
func (s *stack) hostPort(svc string, port int) int {
	s.t.Helper()
	out := strings.TrimSpace(s.compose("port", svc, strconv.Itoa(port)))
	i := strings.LastIndexByte(out, ':')
	require.Positive(s.t, i, out)
	p, err := strconv.Atoi(out[i+1:])
	require.NoError(s.t, err, out)
	return p
}

// monitorCLI runs the monitor image's CLI in a one-off container of the
// monitor service (its secrets and settings), as deploy/README.md shows.
func (s *stack) monitorCLI(env []string, args ...string) string {
	s.t.Helper()
	run := []string{"run", "--rm", "--no-deps"}
	for _, e := range env {
		run = append(run, "-e", e)
	}
	return s.compose(append(append(run, "monitor"), args...)...)
}

func (s *stack) memory(when string) {
	s.t.Helper()
	var ids []string
	for _, svc := range append([]string{"postgres", "kafka"}, sitewatchServices...) {
		ids = append(ids, s.id(svc))
	}
	out := s.docker(append([]string{"stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}\t{{.CPUPerc}}"}, ids...)...)
	s.t.Logf("containers: memory %s:\n%s", when, out)
}

func httpGet(t *testing.T, url string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header = header
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err, url)
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// TestContainers runs sitewatch as users deploy it: the images built from
// deploy/Dockerfile and the stack of deploy/docker-compose.yml, unchanged,
// on a real Docker engine (scripts/docker.sh; stand-ins for the official
// base images where they cannot be pulled), with the test's own site and
// webhook receiver in containers beside it.
func TestContainers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images and runs the compose stack")
	}
	s := newStack(t)
	ctx := context.Background()

	start := time.Now()
	s.compose("build")
	t.Logf("containers: build of the images took %s", time.Since(start).Round(100*time.Millisecond))
	for _, img := range []string{"sitewatch-monitor:dev", "sitewatch-relay:dev", "sitewatch-sink:dev", "sitewatch-e2e-peer:dev"} {
		size, err := strconv.ParseInt(strings.TrimSpace(s.docker("image", "inspect", "-f", "{{.Size}}", img)), 10, 64)
		require.NoError(t, err)
		t.Logf("containers: image %s: %.1f MB", img, float64(size)/1e6)
	}

	// 1. up --build: every long-running service healthy, migrate exits 0.
	start = time.Now()
	s.compose("up", "-d", "--build")
	s.waitHealthy(3*time.Minute, "postgres", "kafka", "monitor", "relay", "sink")
	t.Logf("containers: up -d --build (images built) to every service healthy: %s", time.Since(start).Round(100*time.Millisecond))
	require.Equal(t, "exited 0", s.inspect("migrate", "{{.State.Status}} {{.State.ExitCode}}"), "migrate")
	require.Equal(t, "exited 0", s.inspect("kafka-topics", "{{.State.Status}} {{.State.ExitCode}}"), "kafka-topics")
	pool := s.pool()
	s.memory("at idle")

	// 2. A site on the compose network, added with the monitor image's CLI,
	// reaches stats through the relay and the sink.
	s.monitorCLI([]string{"SITEWATCH_CHANNEL_SECRET=" + hookSecret},
		"channels", "add", "oncall", "--webhook", "http://hookrecv:8080/hook", "--default")
	okURL := "http://testsite:8080/ok/0"
	s.monitorCLI(nil, "sites", "add", okURL, "--match", "sitewatch-e2e ok", "--interval", "1s", "--name", "e2e site zero")
	require.Eventually(t, func() bool {
		return count(t, pool, `SELECT count(*) FROM stats WHERE url = $1 AND status_code = 200 AND regex_matched
			AND error_class IS NULL`, okURL) >= 2
	}, 60*time.Second, 250*time.Millisecond, "the site's checks reach stats")
	var remoteIP string
	require.NoError(t, pool.QueryRow(ctx, "SELECT remote_ip FROM stats WHERE url = $1 LIMIT 1", okURL).Scan(&remoteIP))
	t.Logf("containers: the monitor reached testsite at %s (network %s)", remoteIP, s.subnet)

	// An icmp check from the monitor's container, which has no capability
	// at all: Docker's ping_group_range lets its user open an unprivileged
	// ICMP socket.
	pingURL := "icmp://testsite?count=2"
	s.monitorCLI(nil, "sites", "add", pingURL, "--interval", "1s")
	require.Eventually(t, func() bool {
		return count(t, pool, `SELECT count(*) FROM stats WHERE url = $1 AND kind = 'icmp' AND error_class IS NULL
			AND icmp_sent = 2 AND icmp_received = 2 AND rtt_avg_ms > 0`, pingURL) >= 1
	}, 60*time.Second, 250*time.Millisecond, "the monitor's container pings testsite without CAP_NET_RAW")

	// A heartbeat site: its job pings the monitor's published ping port.
	added := s.monitorCLI(nil, "sites", "add", "heartbeat://e2e-job?grace=1m", "--interval", "1h")
	token := regexp.MustCompile(`ping token (\S+)`).FindStringSubmatch(added)
	require.Len(t, token, 2, added)
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/ping/%s", s.ports["SITEWATCH_PING_PORT"], token[1]), "text/plain", nil)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool {
		return count(t, pool, `SELECT count(*) FROM stats WHERE url = 'heartbeat://e2e-job?grace=1m' AND kind = 'heartbeat'
			AND error_class IS NULL`) == 1
	}, 60*time.Second, 250*time.Millisecond, "the ping through the monitor's published port is a check")

	// 3. The site goes down: one incident, one notification at the
	// receiver's container, signed with the channel's secret.
	siteAPI := fmt.Sprintf("http://127.0.0.1:%d", s.hostPort("testsite", 8080))
	hooksAPI := fmt.Sprintf("http://127.0.0.1:%d/hooks", s.hostPort("hookrecv", 8080))
	flakyURL := "http://testsite:8080/flaky"
	s.monitorCLI(nil, "sites", "add", flakyURL, "--match", "sitewatch-e2e ok", "--interval", "1s", "--name", "e2e flaky")
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM stats WHERE url = $1 AND error_class IS NULL", flakyURL) >= 2
	}, 60*time.Second, 250*time.Millisecond, "the flaky site is up first")
	setFlaky := func(state string) {
		resp, err := http.Post(siteAPI+"/state?flaky="+state, "text/plain", nil)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	setFlaky("down")
	type received struct {
		IdempotencyKey string          `json:"idempotency_key"`
		Signature      string          `json:"signature"`
		Body           json.RawMessage `json:"body"`
	}
	opened := func() []received {
		code, body := httpGet(t, hooksAPI, nil)
		require.Equal(t, http.StatusOK, code, body)
		var all, out []received
		require.NoError(t, json.Unmarshal([]byte(body), &all))
		for _, h := range all {
			var ce struct {
				Type string `json:"type"`
				Data struct {
					URL  string `json:"url"`
					Kind string `json:"kind"`
				} `json:"data"`
			}
			require.NoError(t, json.Unmarshal(h.Body, &ce))
			require.True(t, notify.Verify(hookSecret, h.Body, h.Signature), "signed with the channel's secret: %s", h.Body)
			if ce.Type == checkevent.IncidentOpenedType && ce.Data.URL == flakyURL && ce.Data.Kind == checkevent.KindDown {
				out = append(out, h)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(opened()) > 0 }, 90*time.Second, 250*time.Millisecond,
		"the incident's notification reaches the receiver")
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM incidents WHERE url = $1 AND kind = 'down'", flakyURL), "one incident")
	require.Len(t, opened(), 1, "one notification")
	setFlaky("up")

	// 4. The status page through the published 127.0.0.1 port: refused
	// without the token, served with it.
	page := fmt.Sprintf("http://127.0.0.1:%d/", s.ports["SITEWATCH_STATUS_PORT"])
	code, _ := httpGet(t, page, nil)
	require.Equal(t, http.StatusUnauthorized, code, "no token")
	code, _ = httpGet(t, page, http.Header{"Authorization": {"Bearer wrong-" + s.secret("sink_ui_token")}})
	require.Equal(t, http.StatusUnauthorized, code, "a wrong token")
	code, body := httpGet(t, page, http.Header{"Authorization": {"Bearer " + s.secret("sink_ui_token")}})
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "e2e site zero")

	// A public status page through its published port, without a token:
	// the site's name and state, not its address.
	zero := count(t, pool, "SELECT id FROM sites WHERE name = 'e2e site zero'")
	s.monitorCLI(nil, "pages", "add", "e2e", "--title", "e2e status", "--group", fmt.Sprintf("Site=%d", zero))
	code, body = httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/status/e2e", s.ports["SITEWATCH_PUBLIC_PORT"]), nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "e2e site zero")
	require.Contains(t, body, "All systems operational")
	require.NotContains(t, body, "testsite", "no URL on a public page")

	// 5. Each sitewatch container: a non-root uid, a root file system that
	// refuses writes, no capabilities, no new privileges, its secrets
	// readable by its user and none of them in its environment.
	secretValues := map[string]string{}
	entries, err := os.ReadDir(s.secrets)
	require.NoError(t, err)
	for _, e := range entries {
		if !e.IsDir() {
			secretValues[e.Name()] = strings.TrimSpace(s.secret(e.Name()))
		}
	}
	for _, svc := range sitewatchServices {
		checkHardened(t, s, svc, secretValues)
	}

	// 6. Under a steady load of checks: the relay killed, the sink
	// restarted, the whole stack down and up again; 0 checks lost, 0
	// duplicated, the data kept.
	const loadSites = 30
	for i := 1; i <= loadSites; i++ {
		s.monitorCLI(nil, "sites", "add", fmt.Sprintf("http://testsite:8080/ok/%d", i), "--match", "sitewatch-e2e ok", "--interval", "1s")
	}
	stored := func() int { return count(t, pool, "SELECT count(*) FROM stats") }
	grows := func(what string) {
		t.Helper()
		from := stored()
		require.Eventually(t, func() bool { return stored() >= from+loadSites*3 }, 90*time.Second, 250*time.Millisecond,
			"checks keep reaching stats %s", what)
	}
	grows("under load")
	s.memory("under load (about 32 checks/s)")

	s.compose("kill", "-s", "KILL", "relay")
	require.Equal(t, "exited 137", s.inspect("relay", "{{.State.Status}} {{.State.ExitCode}}"))
	s.compose("up", "-d", "relay")
	t.Logf("containers: relay after kill -9: healthy in %s", s.waitHealthy(2*time.Minute, "relay").Round(100*time.Millisecond))
	grows("after the relay's kill -9")

	s.compose("restart", "sink")
	t.Logf("containers: sink after restart: healthy in %s", s.waitHealthy(2*time.Minute, "sink").Round(100*time.Millisecond))
	grows("after the sink's restart")

	beforeDown := stored()
	start = time.Now()
	s.compose("down")
	t.Logf("containers: down took %s", time.Since(start).Round(100*time.Millisecond))
	start = time.Now()
	s.compose("up", "-d")
	s.waitHealthy(3*time.Minute, "postgres", "kafka", "monitor", "relay", "sink")
	t.Logf("containers: up -d after down: every service healthy in %s", time.Since(start).Round(100*time.Millisecond))
	pool = s.pool()
	require.GreaterOrEqual(t, stored(), beforeDown, "the data is kept across down and up")
	require.Equal(t, loadSites+4, count(t, pool, "SELECT count(*) FROM sites"), "the sites are kept (site zero, the icmp, heartbeat and flaky sites, the load)")
	grows("after down and up")

	// Stop the checks, let the relay and the sink drain, then count every
	// check written to the outbox against stats.
	s.compose("stop", "monitor")
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM outbox WHERE NOT published") == 0 &&
			count(t, pool, `SELECT count(*) FROM outbox o WHERE topic_name = 'sitewatch.checks'
				AND NOT EXISTS (SELECT 1 FROM stats s WHERE s.event_id = o.event_id)`) == 0
	}, 2*time.Minute, 250*time.Millisecond, "every check in the outbox is in stats")
	checks := count(t, pool, "SELECT count(*) FROM outbox WHERE topic_name = 'sitewatch.checks'")
	require.Equal(t, checks, stored(), "0 lost, 0 duplicated: one stats row per check written")
	require.Zero(t, count(t, pool, "SELECT count(*) FROM (SELECT event_id FROM stats GROUP BY event_id HAVING count(*) > 1) d"))
	t.Logf("containers: %d checks through kill -9 of the relay, a restart of the sink and down/up: 0 lost, 0 duplicated", checks)
	s.compose("start", "monitor")
	s.waitHealthy(2*time.Minute, "monitor")

	// 7. The observability profile: Prometheus scrapes the three services
	// and has the alert rules loaded.
	s.compose("--profile", "observability", "up", "-d", "prometheus")
	prom := fmt.Sprintf("http://127.0.0.1:%d/api/v1", s.ports["PROMETHEUS_HOST_PORT"])
	require.Eventually(t, func() bool {
		resp, err := http.Get(prom + "/targets?state=active")
		if err != nil {
			return false
		}
		defer func() { _ = resp.Body.Close() }()
		var targets struct {
			Data struct {
				ActiveTargets []struct {
					Labels map[string]string `json:"labels"`
					Health string            `json:"health"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&targets) != nil {
			return false
		}
		up := map[string]bool{}
		for _, tg := range targets.Data.ActiveTargets {
			if tg.Health == "up" {
				up[tg.Labels["instance"]] = true
			}
		}
		return len(targets.Data.ActiveTargets) == 3 && up["monitor:9101"] && up["relay:9102"] && up["sink:9103"]
	}, 2*time.Minute, 500*time.Millisecond, "Prometheus scrapes monitor, relay and sink")
	code, body = httpGet(t, prom+"/rules?type=alert", nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"name":"SitewatchRelayStalled"`)
	require.Contains(t, body, `"name":"SitewatchSitesDown"`)
	require.Equal(t, strings.Count(readFile(t, filepath.Join(s.root, "deploy", "prometheus", "alerts.yml")), "- alert:"),
		strings.Count(body, `"type":"alerting"`), "every alert rule loaded")
	s.compose("--profile", "observability", "stop", "prometheus")

	// 8. The secure profile: the relay and the sink move to the broker
	// that speaks only SASL_SSL (SCRAM-SHA-512, the CA as PEM text); with
	// the plaintext broker stopped, checks still reach stats.
	out, err := exec.Command(filepath.Join(s.root, "scripts", "tls.sh"), s.secrets).CombinedOutput()
	require.NoError(t, err, "scripts/tls.sh: %s", out)
	secure := []string{"--profile", "secure", "--env-file", filepath.Join(s.secrets, "secure.env")}
	s.compose(append(secure, "up", "-d")...)
	s.waitHealthy(3*time.Minute, "kafka-secure", "relay", "sink")
	require.Equal(t, "sasl_ssl", envOf(t, s, "relay", "KAFKA_SECURITY_PROTOCOL"))
	require.Equal(t, "kafka-secure:9094", envOf(t, s, "sink", "KAFKA_BROKERS"))
	s.compose(append(secure, "stop", "kafka")...)
	grows("over SASL_SSL, with the plaintext broker stopped")

	// An address on the test's network that nobody holds any more: every
	// echo request of an icmp check is lost.
	goneIP := s.inspect("hookrecv", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
	require.NotEmpty(t, goneIP)
	s.compose("stop", "hookrecv")
	lostURL := "icmp://" + goneIP + "?count=2"
	s.monitorCLI(nil, "sites", "add", lostURL, "--interval", "3s")
	require.Eventually(t, func() bool {
		return count(t, pool, `SELECT count(*) FROM stats WHERE url = $1 AND error_class = 'packet_loss'
			AND icmp_sent = 2 AND icmp_received = 0 AND rtt_avg_ms IS NULL`, lostURL) >= 1
	}, 60*time.Second, 250*time.Millisecond, "echo requests to an address nobody holds are lost")
}

// checkHardened checks svc's running container from the host, through its
// process in /proc (the images have no shell to ask from inside).
func checkHardened(t *testing.T, s *stack, svc string, secretValues map[string]string) {
	t.Helper()
	pid := s.inspect(svc, "{{.State.Pid}}")
	status := readFile(t, "/proc/"+pid+"/status")
	fields := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			fields[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	require.Equal(t, "65532 65532 65532 65532", fields["Uid"], "%s: runs as the nonroot uid", svc)
	require.Equal(t, "65532 65532 65532 65532", fields["Gid"], "%s: and gid", svc)
	require.Equal(t, "0000000000000000", fields["CapEff"], "%s: no effective capability", svc)
	require.Equal(t, "0000000000000000", fields["CapPrm"], "%s: none permitted", svc)
	require.Equal(t, "1", fields["NoNewPrivs"], "%s: no-new-privileges", svc)

	err := os.WriteFile("/proc/"+pid+"/root/sitewatch-write-probe", []byte("x"), 0o644)
	require.True(t, errors.Is(err, syscall.EROFS), "%s: the root file system refuses a write, got %v", svc, err)

	mounted, err := os.ReadDir("/proc/" + pid + "/root/run/secrets")
	require.NoError(t, err)
	require.NotEmpty(t, mounted)
	for _, m := range mounted {
		path := "/proc/" + pid + "/root/run/secrets/" + m.Name()
		fi, err := os.Stat(path)
		require.NoError(t, err)
		st := fi.Sys().(*syscall.Stat_t)
		require.True(t, fi.Mode().Perm()&0o004 != 0 || st.Uid == 65532,
			"%s: secret %s (mode %s, uid %d) readable by uid 65532", svc, m.Name(), fi.Mode(), st.Uid)
		require.Equal(t, secretValues[m.Name()], strings.TrimSpace(readFile(t, path)), "%s: secret %s", svc, m.Name())
	}
	var env []string
	require.NoError(t, json.Unmarshal([]byte(s.inspect(svc, "{{json .Config.Env}}")), &env))
	for _, e := range env {
		for name, v := range secretValues {
			if len(v) >= 8 {
				require.NotContains(t, e, v, "%s: secret %s in docker inspect's environment", svc, name)
			}
		}
	}
	t.Logf("containers: %s runs as uid 65532, CapEff 0, no-new-privileges, read-only root; %d secrets, none in its environment", svc, len(mounted))
}

func envOf(t *testing.T, s *stack, svc, name string) string {
	t.Helper()
	var env []string
	require.NoError(t, json.Unmarshal([]byte(s.inspect(svc, "{{json .Config.Env}}")), &env))
	for _, e := range env {
		if k, v, ok := strings.Cut(e, "="); ok && k == name {
			return v
		}
	}
	return ""
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(bytes.TrimRight(b, "\x00"))
}
