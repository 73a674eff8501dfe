package main

// These tests run the real relay binary against the real PostgreSQL and
// Kafka and abuse it: kill -9 in mid-stream, replicas dying, the broker
// stopping under load.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/kafkaclient"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
)

var (
	binDir        string
	relayBin      string
	relayBuild    sync.Once
	relayBuildErr error
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "relay-chaos-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() { _ = os.RemoveAll(dir) }()
		binDir = dir
		return m.Run()
	}())
}

// relayBinary builds the relay once, when a test first needs it (not in
// TestMain: every process of a fuzzing run would build it).
func relayBinary(t *testing.T) string {
	t.Helper()
	relayBuild.Do(func() {
		relayBin = filepath.Join(binDir, "relay")
		if out, err := exec.Command("go", "build", "-o", relayBin, ".").CombinedOutput(); err != nil {
			relayBuildErr = fmt.Errorf("building relay: %v\n%s", err, out)
		}
	})
	require.NoError(t, relayBuildErr)
	return relayBin
}

// relayProc is one running relay binary.
type relayProc struct {
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

func startRelay(t *testing.T, dbURL, brokers, topic string, extra ...string) *relayProc {
	t.Helper()
	log, err := os.CreateTemp(t.TempDir(), "relay-*.log")
	require.NoError(t, err)
	args := append([]string{"run", "-ops-addr", "127.0.0.1:0", "-batch-size", "50", "-workers", "2",
		"-poll-interval", "200ms", "-rebalance-interval", "300ms", "-retention", "0",
		"-topics", topic, "-log-format", "console"}, extra...)
	cmd := exec.Command(relayBinary(t), args...)
	cmd.Env = append(os.Environ(), "KAFKA_BROKERS="+brokers)
	if dbURL != "" {
		cmd.Env = append(cmd.Env, "DATABASE_URL="+dbURL)
	}
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	p := &relayProc{cmd: cmd, log: log, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	// Up means its signal handling is in place: a SIGTERM sent before would
	// kill it like any process, which is not what a test of it means.
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(log.Name())
		return strings.Contains(string(b), "relay starting") || strings.Contains(string(b), "waiting for the source")
	}, 30*time.Second, 10*time.Millisecond, "the relay starts")
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			lines := strings.Split(string(b), "\n")
			t.Logf("---- relay pid %d, last lines ----\n%s", cmd.Process.Pid, strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
	return p
}

func (p *relayProc) kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *relayProc) terminate(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		require.Equal(t, 0, p.cmd.ProcessState.ExitCode(), "relay exits 0 on SIGTERM")
	case <-time.After(30 * time.Second):
		t.Fatal("relay did not exit within 30s of SIGTERM")
	}
}

// peakRSS is the relay's peak resident memory, from /proc.
func (p *relayProc) peakRSS(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			require.NoError(t, err)
			return kb * 1024
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// writer keeps adding rows for keys k0..k(keys-1), each key's payload a
// sequence number 1, 2, 3, ... so a consumer can check per-key order.
type writer struct {
	pool    *pgxpool.Pool
	topic   string
	keys    int
	written atomic.Int64
	stop    chan struct{}
	done    chan struct{}
}

func startWriter(t *testing.T, pool *pgxpool.Pool, topic string, keys int, perTick int, tick time.Duration) *writer {
	t.Helper()
	w := &writer{pool: pool, topic: topic, keys: keys, stop: make(chan struct{}), done: make(chan struct{})}
	seq := make([]int, keys)
	go func() {
		defer close(w.done)
		ticker := time.NewTicker(tick)
		defer ticker.Stop()
		n := 0
		for {
			select {
			case <-w.stop:
				return
			case <-ticker.C:
			}
			msgs := make([]outbox.Message, perTick)
			for i := range msgs {
				k := n % keys
				n++
				seq[k]++
				msgs[i] = outbox.Message{Topic: topic, Key: []byte("k" + strconv.Itoa(k)), Payload: []byte(strconv.Itoa(seq[k]))}
			}
			err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
				return outbox.Write(context.Background(), tx, msgs...)
			})
			if err != nil {
				t.Errorf("writing outbox rows: %v", err)
				return
			}
			w.written.Add(int64(len(msgs)))
		}
	}()
	return w
}

func (w *writer) finish() int64 {
	close(w.stop)
	<-w.done
	return w.written.Load()
}

// audit records every flip of `published` so a test can prove each row
// was flipped exactly once.
func audit(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `
		CREATE TABLE flips (id bigint, was_published boolean);
		CREATE FUNCTION record_flip() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO flips VALUES (OLD.id, OLD.published); RETURN NEW; END $$;
		CREATE TRIGGER record_flip BEFORE UPDATE ON outbox FOR EACH ROW WHEN (NEW.published) EXECUTE FUNCTION record_flip();`)
	require.NoError(t, err)
}

// flipped returns how many rows have been flipped so far (audit must be on).
func flipped(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	var n int64
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM flips").Scan(&n))
	return n
}

// waitProgress waits until n more rows have been flipped: the relay is
// publishing, so what the test does next lands mid-stream.
func waitProgress(t *testing.T, pool *pgxpool.Pool, n int64, msg string) {
	t.Helper()
	from := flipped(t, pool)
	require.Eventually(t, func() bool { return flipped(t, pool) >= from+n }, 60*time.Second, 20*time.Millisecond, msg)
}

func waitAllPublished(t *testing.T, pool *pgxpool.Pool, written int64, timeout time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool {
		var pending, total int64
		require.NoError(t, pool.QueryRow(context.Background(),
			"SELECT count(*) FILTER (WHERE NOT published), count(*) FROM outbox").Scan(&pending, &total))
		return pending == 0 && total == written
	}, timeout, 100*time.Millisecond, "every row published")
}

// verify proves: every row reached Kafka at least once, was flipped exactly
// once, and each key's messages first arrived in outbox order. It returns
// the number of duplicates the consumer saw.
func verify(t *testing.T, pool *pgxpool.Pool, cfg kafkaclient.Config, topic string, written int64) int {
	t.Helper()
	ctx := context.Background()
	var flips, doubleFlips, flippedRows int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE was_published), count(DISTINCT id) FROM flips`).
		Scan(&flips, &doubleFlips, &flippedRows))
	require.Zero(t, doubleFlips, "no row is flipped twice")
	require.Equal(t, written, flippedRows, "every row is flipped")
	// A crash after the UPDATE but before the commit rolls the flip back:
	// only committed flips count, and each row has exactly one.
	require.Equal(t, written, flips, "exactly one committed flip per row")

	msgs := kafkatest.ConsumeUntilIdle(t, cfg, topic, 3*time.Second, 2*time.Minute)
	seen := map[string]bool{}
	maxSeq := map[string]int{}
	dups := 0
	for _, m := range msgs {
		id := ""
		for _, h := range m.Headers {
			if h.Key == "ce_id" {
				id = string(h.Value)
			}
		}
		seq, err := strconv.Atoi(string(m.Value))
		require.NoError(t, err)
		key := string(m.Key)
		if seen[id] {
			dups++
			require.LessOrEqual(t, seq, maxSeq[key], "a duplicate is a replay of what was already delivered")
			continue
		}
		seen[id] = true
		require.Equal(t, maxSeq[key]+1, seq, "key %s: first deliveries in outbox order, no gaps", key)
		maxSeq[key] = seq
	}
	require.EqualValues(t, written, len(seen), "every row reached Kafka")
	return dups
}

func TestKill9MidStreamAgainAndAgain(t *testing.T) {
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	audit(t, pool)
	cfg := kafkatest.Config(t)
	topic := kafkatest.NewTopic(t, 6)

	w := startWriter(t, pool, topic, 20, 40, 20*time.Millisecond) // ~2,000 rows/s: kills land mid-batch
	kills := 0
	for range 6 {
		p := startRelay(t, dbURL, cfg.Brokers, topic)
		waitProgress(t, pool, int64(300+200*kills), "the relay publishes before it is killed")
		p.kill9()
		kills++
	}
	written := w.finish()
	final := startRelay(t, dbURL, cfg.Brokers, topic)
	waitAllPublished(t, pool, written, 60*time.Second)
	final.terminate(t)

	dups := verify(t, pool, cfg, topic, written)
	t.Logf("%d rows, %d kill -9, %d duplicates seen by the consumer", written, kills, dups)
	require.LessOrEqual(t, dups, kills*2*50, "duplicates: at most the batches in flight at each kill")
}

// lanesByPid returns how many lanes of the table each backend holds.
func lanesByPid(t *testing.T, pool *pgxpool.Pool) map[int]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT pid, count(*)::int FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND objid < 65536
		  AND classid = 'outbox'::regclass::oid GROUP BY pid`)
	require.NoError(t, err)
	out := map[int]int{}
	for rows.Next() {
		var pid, n int
		require.NoError(t, rows.Scan(&pid, &n))
		out[pid] = n
	}
	require.NoError(t, rows.Err())
	return out
}

func TestThreeReplicasOneKilled(t *testing.T) {
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	audit(t, pool)
	cfg := kafkatest.Config(t)
	topic := kafkatest.NewTopic(t, 6)

	w := startWriter(t, pool, topic, 30, 10, 20*time.Millisecond)
	replicas := []*relayProc{
		startRelay(t, dbURL, cfg.Brokers, topic), startRelay(t, dbURL, cfg.Brokers, topic), startRelay(t, dbURL, cfg.Brokers, topic),
	}
	require.Eventually(t, func() bool {
		l := lanesByPid(t, pool)
		if len(l) != 3 {
			return false
		}
		total := 0
		for _, n := range l {
			if n < 20 || n > 22 {
				return false
			}
			total += n
		}
		return total == 64
	}, 20*time.Second, 100*time.Millisecond, "three replicas share the 64 lanes evenly")

	waitProgress(t, pool, 1000, "the three replicas publish")
	replicas[1].kill9()
	killed := time.Now()
	require.Eventually(t, func() bool {
		l := lanesByPid(t, pool)
		total := 0
		for _, n := range l {
			total += n
		}
		return len(l) == 2 && total == 64
	}, 5*time.Second, 50*time.Millisecond, "the dead replica's lanes move to the others within 5 s")
	t.Logf("lanes of the killed replica taken over in %s", time.Since(killed).Round(time.Millisecond))

	waitProgress(t, pool, 1000, "the survivors publish")
	written := w.finish()
	waitAllPublished(t, pool, written, 60*time.Second)
	replicas[0].terminate(t)
	replicas[2].terminate(t)
	dups := verify(t, pool, cfg, topic, written)
	t.Logf("%d rows, %d duplicates", written, dups)
}

func TestBrokerDownTwentySecondsUnderLoad(t *testing.T) {
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	audit(t, pool)
	broker := kafkatest.StartPrivate(t, kafkatest.PrivateOptions{})
	cfg := broker.Config()
	topic := "test.broker-down"
	require.NoError(t, kafkaclient.EnsureTopic(context.Background(), cfg, topic, 3))

	w := startWriter(t, pool, topic, 20, 10, 20*time.Millisecond)
	p := startRelay(t, dbURL, cfg.Brokers, topic)
	waitProgress(t, pool, 1000, "the relay publishes before the broker stops")

	broker.Stop()
	var pendingDuringOutage int64
	time.Sleep(20 * time.Second) // the outage itself: the scenario, not a wait for an event
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE NOT published").Scan(&pendingDuringOutage))
	rssDuringOutage := p.peakRSS(t)
	broker.Start()

	waitProgress(t, pool, 1000, "the relay publishes again once the broker is back")
	written := w.finish()
	waitAllPublished(t, pool, written, 90*time.Second)
	p.terminate(t)
	dups := verify(t, pool, cfg, topic, written)
	t.Logf("%d rows (%d pending when the broker came back), %d duplicates, relay peak RSS %d MiB",
		written, pendingDuringOutage, dups, rssDuringOutage>>20)
	require.Greater(t, pendingDuringOutage, int64(5000), "rows kept arriving while the broker was down")
	require.Less(t, rssDuringOutage, int64(200<<20), "memory stays bounded while rows pile up")

	var parked int64
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL").Scan(&parked))
	require.Zero(t, parked, "an unavailable broker is not the rows' fault: nothing is parked")
}

func TestDatabaseConnectionsKilledUnderLoad(t *testing.T) {
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	audit(t, pool)
	cfg := kafkatest.Config(t)
	topic := kafkatest.NewTopic(t, 3)

	w := startWriter(t, pool, topic, 20, 20, 20*time.Millisecond)
	// A name of its own, so only this test's relay loses its connections.
	appName := "chaos-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	p := startRelay(t, dbURL+"&application_name="+appName, cfg.Brokers, topic)
	killed := 0
	for range 4 {
		waitProgress(t, pool, 500, "the relay publishes between the cuts")
		var n int
		// Every connection of the relay: its pool and its lease connection.
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1`, appName).Scan(&n))
		killed += n
	}
	written := w.finish()
	waitAllPublished(t, pool, written, 60*time.Second)
	p.terminate(t)
	dups := verify(t, pool, cfg, topic, written)
	t.Logf("%d rows, %d relay connections terminated, %d duplicates", written, killed, dups)
	require.Greater(t, killed, 4, "the relay's connections were really cut")
}
