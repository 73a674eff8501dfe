package e2e

// The monitor fleet, with the real binaries: replicas of one region share
// the sites, regions each check every site, a dead replica's sites move.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/platform/notify"
	"github.com/sitewatch/sitewatch/platform/notify/notifytest"
	"github.com/sitewatch/sitewatch/platform/porttest"
)

// okServer answers every request with 200 and counts them.
func okServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// importSites adds n sites at interval on srv, with extra YAML per site.
func importSites(t *testing.T, env []string, srv string, n int, interval, extra string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("sites:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - url: %s/site/%d\n    interval: %s\n    timeout: %s\n%s", srv, i, interval, interval, extra)
	}
	path := filepath.Join(t.TempDir(), "sites.yaml")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	code, out := run(t, env, "monitor", "sites", "import", path)
	require.Equal(t, 0, code, out)
}

// replica is one monitor process with its ops address.
type replica struct {
	*process
	ops string
}

func startReplica(t *testing.T, env []string, region string, extra ...string) *replica {
	t.Helper()
	ops := porttest.Addr(t)
	args := append([]string{"run", "-ops-addr", ops, "-region", region, "-log-format", "console"}, extra...)
	return &replica{process: start(t, "monitor", env, args...), ops: ops}
}

// kill9 kills the process with SIGKILL and waits for it to be gone.
func (p *process) kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (r *replica) ready() bool {
	resp, err := http.Get("http://" + r.ops + "/readyz")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

var gaugeLine = regexp.MustCompile(`(?m)^sitewatch_monitor_sites (\d+)`)

// sites is the number of sites the replica schedules, from its /metrics.
func (r *replica) sites() int {
	resp, err := http.Get("http://" + r.ops + "/metrics")
	if err != nil {
		return -1
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	m := gaugeLine.FindSubmatch(body)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func waitReady(t *testing.T, replicas ...*replica) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, r := range replicas {
			if !r.ready() {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "every replica holds its share (/readyz)")
}

// check is one check a monitor wrote to the outbox.
type check struct {
	site   int64
	region string
	at     time.Time
}

// checks reads the checks stored in stats, per site, in time order.
func checks(t *testing.T, pool *pgxpool.Pool, from, to time.Time) map[int64][]check {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT site_id, region, checked_at FROM stats
		WHERE checked_at BETWEEN $1 AND $2 ORDER BY 1, 3`, from, to)
	require.NoError(t, err)
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (check, error) {
		var c check
		return c, r.Scan(&c.site, &c.region, &c.at)
	})
	require.NoError(t, err)
	out := map[int64][]check{}
	for _, c := range all {
		out[c.site] = append(out[c.site], c)
	}
	return out
}

type window struct{ from, to time.Time }

func (w window) holds(t time.Time) bool { return !t.Before(w.from) && !t.After(w.to) }

// drain waits until every check written to topic is in stats, then stops
// the relay and the sink.
func drain(t *testing.T, pool *pgxpool.Pool, topic string, relay, sink *process) {
	t.Helper()
	require.Eventually(t, func() bool {
		return count(t, pool, `SELECT count(*) FROM outbox o WHERE topic_name = $1
			AND NOT EXISTS (SELECT 1 FROM stats s WHERE s.event_id = o.event_id)`, topic) == 0
	}, 60*time.Second, 200*time.Millisecond, "every check reaches stats")
	relay.stop(t, 20*time.Second)
	sink.stop(t, 20*time.Second)
}

// TestReplicasShareTheSitesAndSurviveKill9: 3 replicas in one region, 300
// sites at 1 s; one replica killed with kill -9, then started again. No
// site goes unchecked for more than its interval + 5 s; two checks of a
// site closer than half its interval happen only around the handovers;
// every site is checked at the end.
func TestReplicasShareTheSitesAndSurviveKill9(t *testing.T) {
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	topic := kafkatest.NewTopic(t, 3)
	env := []string{"DATABASE_URL=" + dbURL, "KAFKA_BROKERS=" + kafkatest.Config(t).Brokers, "LOG_FORMAT=console"}
	srv, _ := okServer(t)
	const sites = 300
	importSites(t, env, srv.URL, sites, "1s", "    topic: "+topic+"\n")
	relay := start(t, "relay", env, "-ops-addr", porttest.Addr(t), "-poll-interval", "50ms", "-topics", topic)
	sink := start(t, "sink", env, "-ops-addr", porttest.Addr(t), "-topic", topic, "-group-id", "e2e-"+topic, "-batch-wait", "50ms")

	rs := []*replica{startReplica(t, env, "local"), startReplica(t, env, "local"), startReplica(t, env, "local")}
	waitReady(t, rs...)
	require.Eventually(t, func() bool { return rs[0].sites()+rs[1].sites()+rs[2].sites() == sites },
		15*time.Second, 100*time.Millisecond, "the replicas schedule every site once between them")
	steady := time.Now()
	t.Logf("sites per replica: %d %d %d", rs[0].sites(), rs[1].sites(), rs[2].sites())

	time.Sleep(6 * time.Second) // steady state: the checks this test counts
	killedAt := time.Now()
	rs[1].kill9()
	require.Eventually(t, func() bool { return rs[0].sites()+rs[2].sites() == sites }, 15*time.Second, 50*time.Millisecond,
		"the survivors take the killed replica's sites")
	t.Logf("killed replica's sites taken over in %s", time.Since(killedAt).Round(time.Millisecond))
	time.Sleep(4 * time.Second)

	restartedAt := time.Now()
	rs[1] = startReplica(t, env, "local")
	waitReady(t, rs...)
	require.Eventually(t, func() bool {
		n := []int{rs[0].sites(), rs[1].sites(), rs[2].sites()}
		return n[0]+n[1]+n[2] == sites && n[1] > 0
	}, 15*time.Second, 50*time.Millisecond, "the restarted replica gets a share back")
	settled := time.Now()
	time.Sleep(6 * time.Second)
	end := time.Now()
	for _, r := range []*replica{rs[0], rs[2], rs[1]} {
		r.stop(t, 30*time.Second)
	}
	drain(t, pool, topic, relay, sink)

	handovers := []window{
		{killedAt.Add(-time.Second), killedAt.Add(8 * time.Second)},
		{restartedAt.Add(-time.Second), settled.Add(2 * time.Second)},
	}
	byTime := checks(t, pool, steady, end)
	require.Len(t, byTime, sites, "every site was checked")
	var worstGap time.Duration
	var dups, dupsOutside int
	for id, cs := range byTime {
		require.Equal(t, "local", cs[0].region)
		require.WithinDuration(t, end, cs[len(cs)-1].at, 3*time.Second, "site %d is checked at the end", id)
		for i := 1; i < len(cs); i++ {
			gap := cs[i].at.Sub(cs[i-1].at)
			worstGap = max(worstGap, gap)
			if gap < 500*time.Millisecond {
				dups++
				if !handovers[0].holds(cs[i].at) && !handovers[1].holds(cs[i].at) {
					dupsOutside++
				}
			}
		}
	}
	t.Logf("%d sites: worst gap between two checks %s; %d extra checks, all within the handover windows", sites, worstGap.Round(time.Millisecond), dups)
	require.LessOrEqual(t, worstGap, 6*time.Second, "no site unchecked for more than its interval + 5 s")
	require.Zero(t, dupsOutside, "no double checks in steady state")
	require.LessOrEqual(t, dups, 2*sites, "at most one extra check per moved site and handover")
}

// TestEveryRegionChecksEverySiteOnce: two regions of two replicas each,
// the whole pipeline: every site is checked by both regions, each once per
// interval; a site restricted to one region is checked only there; stats
// carry the region.
func TestEveryRegionChecksEverySiteOnce(t *testing.T) {
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	topic := kafkatest.NewTopic(t, 3)
	env := []string{"DATABASE_URL=" + dbURL, "KAFKA_BROKERS=" + kafkatest.Config(t).Brokers, "LOG_FORMAT=console"}
	srv, _ := okServer(t)
	importSites(t, env, srv.URL, 20, "1s", "    topic: "+topic+"\n")
	code, out := run(t, env, "monitor", "sites", "add", srv.URL+"/eu-only", "--interval", "1s", "--topic", topic, "--regions", "eu-west")
	require.Equal(t, 0, code, out)
	code, out = run(t, env, "monitor", "sites", "show", "21")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "regions:\n      - eu-west")

	rs := []*replica{startReplica(t, env, "eu-west"), startReplica(t, env, "eu-west"),
		startReplica(t, env, "us-east"), startReplica(t, env, "us-east")}
	relay := start(t, "relay", env, "-ops-addr", porttest.Addr(t), "-poll-interval", "50ms", "-topics", topic)
	sink := start(t, "sink", env, "-ops-addr", porttest.Addr(t), "-topic", topic, "-group-id", "e2e-"+topic, "-batch-wait", "50ms")
	waitReady(t, rs...)
	require.Eventually(t, func() bool {
		return rs[0].sites()+rs[1].sites() == 21 && rs[2].sites()+rs[3].sites() == 20
	}, 15*time.Second, 100*time.Millisecond, "each region's replicas split its sites")
	time.Sleep(time.Second)
	from := time.Now()
	time.Sleep(5 * time.Second)
	to := time.Now()
	for _, r := range rs {
		r.stop(t, 30*time.Second)
	}
	drain(t, pool, topic, relay, sink)

	rows, err := pool.Query(context.Background(), `SELECT site_id, region, count(*)::int FROM stats
		WHERE checked_at BETWEEN $1 AND $2 GROUP BY 1, 2`, from, to)
	require.NoError(t, err)
	type key struct {
		site   int64
		region string
	}
	per := map[key]int{}
	for rows.Next() {
		var k key
		var n int
		require.NoError(t, rows.Scan(&k.site, &k.region, &n))
		per[k] = n
	}
	require.NoError(t, rows.Err())
	for id := int64(1); id <= 21; id++ {
		for _, region := range []string{"eu-west", "us-east"} {
			n := per[key{id, region}]
			if id == 21 && region == "us-east" {
				require.Zero(t, n, "the eu-west-only site is not checked in us-east")
				continue
			}
			// 5 s at 1 s: 4 to 6 checks depending on the phase; two
			// replicas of a region checking one site would make 10.
			require.InDelta(t, 5, n, 1, "site %d in %s: once per interval", id, region)
		}
	}
	require.Zero(t, count(t, pool, "SELECT count(*) FROM stats WHERE region IS NULL"), "every stats row carries its region")
}

// TestScaleOutMovesAFairShare: 5,000 sites on one replica, then two, then
// three: each ends within ±10 % of a fair share.
func TestScaleOutMovesAFairShare(t *testing.T) {
	// The replicas share the checks, not the shards: with few sites per
	// shard (id % 256), even shard counts would put 44 % of 300 sites on
	// one of 3 replicas. Each replica ends within ±10 % of its fair share
	// of the sites it schedules (all checked as often), from 1 replica to
	// the last.
	for _, tc := range []struct{ sites, replicas int }{{100, 5}, {300, 3}, {5000, 3}} {
		t.Run(fmt.Sprintf("%d sites", tc.sites), func(t *testing.T) {
			dbURL := dbtest.New(t)
			env := []string{"DATABASE_URL=" + dbURL, "LOG_FORMAT=console"}
			srv, _ := okServer(t)
			importSites(t, env, srv.URL, tc.sites, "1m", "")

			var rs []*replica
			for n := 1; n <= tc.replicas; n++ {
				rs = append(rs, startReplica(t, env, "local"))
				fair := float64(tc.sites) / float64(n)
				require.Eventually(t, func() bool {
					total := 0
					for _, r := range rs {
						s := float64(r.sites())
						if s < fair*0.9 || s > fair*1.1 {
							return false
						}
						total += r.sites()
					}
					return total == tc.sites
				}, 30*time.Second, 100*time.Millisecond, "%d replicas each hold a fair share of %.1f sites, within 10 %%", n, fair)
				var got []int
				for _, r := range rs {
					got = append(got, r.sites())
				}
				t.Logf("%d sites on %d replicas: %v", tc.sites, n, got)
			}
			waitReady(t, rs...)
			for _, r := range rs {
				r.stop(t, 30*time.Second)
			}
		})
	}
}

// TestIncidentsNeedAQuorumOfRegions: three regions check one site; it
// fails from one region only: no incident; from two: one incident naming
// both, announced on sitewatch.incidents; recovered: resolved.
func TestIncidentsNeedAQuorumOfRegions(t *testing.T) {
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	topic, incidents := kafkatest.NewTopic(t, 3), kafkatest.NewTopic(t, 3)
	env := []string{"DATABASE_URL=" + dbURL, "KAFKA_BROKERS=" + kafkatest.Config(t).Brokers, "LOG_FORMAT=console"}
	var failing atomic.Value // the regions the site fails for, by User-Agent
	failing.Store([]string{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, region := range failing.Load().([]string) {
			if strings.HasSuffix(r.UserAgent(), region) {
				http.Error(w, "down from "+region, http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	// A webhook receiver, signed with the channel's secret.
	type note struct {
		typ, key string
		signed   bool
	}
	var notesMu sync.Mutex
	var notes []note
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ce struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(body, &ce)
		notesMu.Lock()
		notes = append(notes, note{ce.Type, r.Header.Get(notify.IdempotencyHeader), notify.Verify("hook-secret", body, r.Header.Get(notify.SignatureHeader))})
		notesMu.Unlock()
	}))
	t.Cleanup(hook.Close)
	code, out := run(t, append(env, "SITEWATCH_CHANNEL_SECRET=hook-secret"), "monitor", "channels", "add", "oncall", "--webhook", hook.URL)
	require.Equal(t, 0, code, out)
	// And an SMTP server of the test's own.
	smtpServer := notifytest.StartSMTP(t)
	code, out = run(t, append(env, "SITEWATCH_CHANNEL_SECRET=mail-pass"), "monitor", "channels", "add", "mail",
		"--email", "smtp://alerts@"+smtpServer.Addr, "--from", "sitewatch@example.com", "--to", "oncall@example.com")
	require.Equal(t, 0, code, out)
	code, out = run(t, env, "monitor", "sites", "add", srv.URL+"/", "--interval", "1s", "--topic", topic,
		"--channel", "oncall", "--channel", "mail")
	require.Equal(t, 0, code, out)

	var rs []*replica
	for _, region := range []string{"eu-west", "us-east", "ap-south"} {
		rs = append(rs, startReplica(t, env, region, "-user-agent", "sitewatch "+region))
	}
	relay := start(t, "relay", env, "-ops-addr", porttest.Addr(t), "-poll-interval", "50ms", "-topics", topic+","+incidents)
	sink := start(t, "sink", env, sinkArgs(topic, incidents)...)
	state := func(region string) string {
		var s string
		_ = pool.QueryRow(context.Background(), "SELECT state FROM site_region_state WHERE region = $1", region).Scan(&s)
		return s
	}
	// Every region checks the site before one fails: a region alone is the
	// only evidence there is, and a quorum of the regions that reported.
	require.Eventually(t, func() bool {
		return state("eu-west") == "up" && state("us-east") == "up" && state("ap-south") == "up"
	}, 30*time.Second, 100*time.Millisecond, "every region says up")
	failing.Store([]string{"eu-west"})
	require.Eventually(t, func() bool {
		return state("eu-west") == "down" && state("us-east") == "up" && state("ap-south") == "up"
	},
		30*time.Second, 100*time.Millisecond, "eu-west says down, the others up")
	// Two more checks from every region since: still no incident.
	seen := count(t, pool, "SELECT count(*) FROM stats")
	require.Eventually(t, func() bool { return count(t, pool, "SELECT count(*) FROM stats") >= seen+6 },
		30*time.Second, 100*time.Millisecond)
	require.Zero(t, count(t, pool, "SELECT count(*) FROM incidents"), "one region's trouble opens no incident")
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM site_state WHERE state = 'degraded'"))

	failing.Store([]string{"eu-west", "us-east"})
	require.Eventually(t, func() bool { return count(t, pool, "SELECT count(*) FROM incidents WHERE kind = 'down'") == 1 },
		30*time.Second, 100*time.Millisecond, "two regions of three: an incident")
	var regions []string
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT regions FROM incidents").Scan(&regions))
	require.Equal(t, []string{"eu-west", "us-east"}, regions)

	failing.Store([]string{})
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM incidents WHERE resolved_at IS NOT NULL AND resolution = 'recovered'") == 1
	}, 30*time.Second, 100*time.Millisecond, "recovered: resolved")
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM incidents"), "one incident, opened and resolved once")

	// Both changes reached Kafka through the relay.
	var types []string
	require.Eventually(t, func() bool {
		types = types[:0]
		for _, m := range kafkatest.ConsumeUntilIdle(t, kafkatest.Config(t), incidents, time.Second, 10*time.Second) {
			if strings.Contains(string(m.Value), srv.URL) {
				types = append(types, headerValue(m.Headers, "ce_type"))
			}
		}
		return len(types) == 2
	}, 60*time.Second, time.Second, "the opened and resolved events on sitewatch.incidents")
	require.Equal(t, []string{checkevent.IncidentOpenedType, checkevent.IncidentResolvedType}, types)

	// The notifier in the sink delivered both, once each, signed.
	require.Eventually(t, func() bool {
		notesMu.Lock()
		defer notesMu.Unlock()
		return len(notes) >= 2
	}, 60*time.Second, 100*time.Millisecond, "the opened and resolved notifications reach the webhook")
	notesMu.Lock()
	got := append([]note(nil), notes...)
	notesMu.Unlock()
	keys := map[string]bool{}
	var gotTypes []string
	for _, n := range got {
		require.True(t, n.signed, "a valid signature")
		if !keys[n.key] {
			keys[n.key] = true
			gotTypes = append(gotTypes, n.typ)
		}
	}
	require.Equal(t, []string{checkevent.IncidentOpenedType, checkevent.IncidentResolvedType}, gotTypes,
		"exactly one opened and one resolved notification, after dedupe on the idempotency key")

	// The same two by mail, in order, authenticated.
	require.Eventually(t, func() bool { return len(smtpServer.Mails()) >= 2 }, 60*time.Second, 100*time.Millisecond,
		"the opened and resolved mails reach the SMTP server")
	mails := smtpServer.Mails()
	require.Equal(t, "alerts\x00mail-pass", mails[0].Auth)
	require.Contains(t, mails[0].Data, "is DOWN")
	require.Contains(t, mails[1].Data, "is fine again")
	for _, r := range rs {
		r.stop(t, 30*time.Second)
	}
	relay.stop(t, 20*time.Second)
	sink.stop(t, 20*time.Second)
}

func headerValue(headers []kafka.Header, key string) string {
	for _, h := range headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// A monitor started before its database waits for it, answering /readyz
// with the reason, and stops cleanly on SIGTERM meanwhile.
func TestMonitorWaitsForItsDatabase(t *testing.T) {
	r := startReplica(t, []string{"DATABASE_URL=postgres://sitewatch@127.0.0.1:1/sitewatch?sslmode=disable", "LOG_FORMAT=console"}, "local")
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + r.ops + "/readyz")
		if err != nil {
			return false
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "waiting for the database")
	}, 20*time.Second, 100*time.Millisecond, "not ready, saying why")
	r.stop(t, 20*time.Second)
}
