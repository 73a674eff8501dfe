package relay

import (
	"context"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sitewatch/sitewatch/db"
	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/outbox/outboxtest"
	"github.com/sitewatch/sitewatch/services/relay/internal/store"
)

// legacyDB returns a database whose outbox is of the earlier, unpartitioned
// layout (outboxtest.LegacyDDL).
func legacyDB(t testing.TB) string {
	t.Helper()
	url := dbtest.New(t)
	_, err := dbtest.Pool(t, url).Exec(context.Background(), "DROP TABLE outbox; "+outboxtest.LegacyDDL)
	require.NoError(t, err)
	return url
}

// partitionedDB returns a database whose outbox is partitioned into
// partitions of rows ids (the migrations' are a million).
func partitionedDB(t testing.TB, rows int64) string {
	t.Helper()
	url := dbtest.New(t)
	_, err := dbtest.Pool(t, url).Exec(context.Background(),
		fmt.Sprintf("DROP TABLE outbox; %s; CALL outbox_partition('outbox', %d)", outboxtest.LegacyDDL, rows))
	require.NoError(t, err)
	return url
}

// partitions lists the outbox's partitions: name, first id, end.
func partitions(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT part::text FROM outbox_partitions('outbox')")
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

// testRows returns n messages for topic "t", their keys spread over keys
// values (none without a key if keys is 0).
func testRows(n, keys int) []outbox.Message {
	msgs := make([]outbox.Message, n)
	for i := range msgs {
		msgs[i] = outbox.Message{Topic: "t", Payload: []byte("x")}
		if keys > 0 {
			msgs[i].Key = []byte(fmt.Sprint(i % keys))
		}
	}
	return msgs
}

// partitionsRelay returns a relay of topic "t" on dbURL's outbox keeping
// partitions of MinPartitionRows ids with a second's retention, its
// metrics, and the warnings it logs.
func partitionsRelay(t *testing.T, dbURL string) (*Relay, *Metrics, *observer.ObservedLogs) {
	t.Helper()
	cfg := testConfig()
	cfg.PartitionRows, cfg.Retention = MinPartitionRows, time.Second
	core, logs := observer.New(zap.WarnLevel)
	m := NewMetrics(prometheus.NewRegistry())
	r, err := New(context.Background(), cfg, Source{Name: "test", DatabaseURL: dbURL, Table: "outbox", Topics: []string{"t"}},
		&fakeProducer{}, zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core())), m)
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return r, m, logs
}

// startRelay runs r until the test ends.
func startRelay(t *testing.T, r *Relay) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// The replica leasing lane 0 keeps partitions ahead of the writers, checks
// each partition as the floor passes it (a waiting row the floor passed
// over is published), and drops it once the retention has gone by,
// carrying its parked rows over.
func TestPartitionsAreKeptAheadCheckedAndDropped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := partitionedDB(t, MinPartitionRows)
	pool := dbtest.Pool(t, dbURL)
	require.Equal(t, []string{"outbox_p1", "outbox_p1001", "outbox_default"}, partitions(t, pool), "outbox_partition made two ahead")

	// A row for a topic the source may not publish to is parked in p1.
	forbidden := outbox.Message{Topic: "forbidden", Payload: []byte("parked")}
	writeRows(t, pool, forbidden)
	msgs := testRows(1499, 7)
	writeRows(t, pool, msgs...) // ids 2..1500
	var parkedEvent string
	require.NoError(t, pool.QueryRow(ctx, "SELECT event_id::text FROM outbox WHERE id = 1").Scan(&parkedEvent))

	r, m, _ := partitionsRelay(t, dbURL)
	startRelay(t, r)

	require.Eventually(t, func() bool { return !slices.Contains(partitions(t, pool), "outbox_p1") }, 30*time.Second, 50*time.Millisecond,
		"p1, all published or parked, is dropped once the floor passed it and the retention went by")
	require.Equal(t, []string{"outbox_p1001", "outbox_p2001", "outbox_p3001", "outbox_default"}, partitions(t, pool),
		"two partitions lie ahead of the highest id (1,500)")
	var id int64
	var reason string
	require.NoError(t, pool.QueryRow(ctx, "SELECT id, last_error FROM outbox WHERE event_id = $1 AND parked_at IS NOT NULL", parkedEvent).Scan(&id, &reason))
	require.Greater(t, id, int64(1500), "the parked row was carried over, with a new id")
	require.Contains(t, reason, "topic not allowed")
	var left, published int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE published) FROM outbox").Scan(&left, &published))
	require.Equal(t, 500+1, left, "rows 1001..1500 and the parked row are left")
	require.Equal(t, 500, published)

	// A row of p1001 waits again below the floor (as a row whose id was
	// drawn long before its commit would): it is found when the floor
	// passes p1001, and published before p1001 is dropped.
	_, err := pool.Exec(ctx, "UPDATE outbox SET published = false, published_at = NULL WHERE id = 1200")
	require.NoError(t, err)
	writeRows(t, pool, msgs[:600]...) // ids from 1,502 (1,501 is the carried row) past 2,000
	require.Eventually(t, func() bool { return !slices.Contains(partitions(t, pool), "outbox_p1001") }, 30*time.Second, 50*time.Millisecond,
		"p1001 is dropped")
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE NOT published AND parked_at IS NULL").Scan(&left))
	require.Zero(t, left)
	require.Eventually(t, func() bool { return testutil.ToFloat64(m.published.WithLabelValues("test")) == 1499+1+600 },
		10*time.Second, 10*time.Millisecond, "every row published once, row 1200 twice (counted after its batch committed)")
	// Counted once the drop committed, which the test may see first.
	require.Eventually(t, func() bool { return testutil.ToFloat64(m.partitions.WithLabelValues("test", "dropped")) >= 2 },
		10*time.Second, 10*time.Millisecond, "both drops counted")
	require.GreaterOrEqual(t, testutil.ToFloat64(m.partitions.WithLabelValues("test", "created")), 2.0)
}

// Partitions are kept ahead for aheadFor of the writers' pace, not just
// partitionsAhead of them: small partitions, at a pace that outran them
// between two rounds, sent rows to the DEFAULT partition.
func TestPartitionsAheadLastTheWritersPace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := partitionedDB(t, MinPartitionRows)
	pool := dbtest.Pool(t, dbURL)
	r, _, _ := partitionsRelay(t, dbURL)
	startRelay(t, r)
	burst := func() {
		for range 8 {
			writeRows(t, pool, testRows(500, 7)...)
		}
	}
	ahead := func() (top int64, n int) {
		require.NoError(t, pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM outbox`).Scan(&top))
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM outbox_partitions('outbox') WHERE first_id > $1`, top).Scan(&n))
		return top, n
	}

	// A round has seen 1,500 rows once it made two partitions ahead of them.
	writeRows(t, pool, testRows(1500, 7)...)
	require.Eventually(t, func() bool { return slices.Contains(partitions(t, pool), "outbox_p3001") }, 30*time.Second, 50*time.Millisecond)

	// The first burst, 4,000 ids in about a round, outruns those two.
	burst()
	require.Eventually(t, func() bool { _, n := ahead(); return n >= 8 }, 30*time.Second, 50*time.Millisecond,
		"20 s of ids at that pace are more than eight partitions")
	top, n := ahead()
	t.Logf("%d partitions of %d ids ahead of id %d", n, MinPartitionRows, top)

	// The next burst at that pace stays in the ranges, but for the ids
	// below the first (the margin outbox_extend leaves writers that outran
	// the ranges).
	burst()
	var strays int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM outbox_default
		WHERE id >= (SELECT min(first_id) FROM outbox_partitions('outbox') WHERE first_id > $1)`, top).Scan(&strays))
	require.Zero(t, strays, "no row of the second burst went to the DEFAULT partition past the ranges")
}

func TestWriterPaceKeepsItsPeakForAWhile(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	var w writerPace
	require.Equal(t, partitionsAhead, w.ahead(25_000), "no pace yet")
	w.observe(at, 1000)
	require.Equal(t, partitionsAhead, w.ahead(25_000), "one look is no pace")
	w.observe(at.Add(2*time.Second), 31_000) // 15,000 ids a second: 300,000 in 20 s
	require.Equal(t, 12, w.ahead(25_000))
	require.Equal(t, partitionsAhead, w.ahead(DefaultPartitionRows), "a million ids last 20 s up to 100,000 a second")
	w.observe(at.Add(4*time.Second), 33_000) // slower: the peak decays, a minute to half
	require.Equal(t, 12, w.ahead(25_000))
	w.observe(at.Add(62*time.Second), 33_000)
	require.Equal(t, 6, w.ahead(25_000), "half the pace a minute later")
	w.observe(at.Add(64*time.Second), 1) // the highest rows gone (an emptied DEFAULT partition)
	require.Equal(t, 6, w.ahead(25_000), "ids going back is no pace")
	w.observe(at.Add(65*time.Second), 10_000_001)
	require.Equal(t, maxPartitionsAhead, w.ahead(25_000), "at most maxPartitionsAhead")
}

// countingProducer acknowledges every message and counts each event id.
type countingProducer struct {
	mu   sync.Mutex
	seen map[string]int
}

func (c *countingProducer) Produce(m *kafka.Message, ch chan kafka.Event) error {
	c.mu.Lock()
	c.seen[headerMap(m)["ce_id"]]++
	c.mu.Unlock()
	go func() { ch <- m }()
	return nil
}

func (c *countingProducer) Purge(int) error { return nil }

// A populated table of the earlier layout is converted in place while a
// writer writes and a relay publishes: no row is lost or published twice,
// and the relay goes on in the new layout (partitions kept ahead).
func TestConvertingATableWhileARelayRunsLosesAndRepeatsNoRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := legacyDB(t)
	pool := dbtest.Pool(t, dbURL)
	cfg := testConfig()
	cfg.PollInterval = 20 * time.Millisecond
	cfg.PartitionRows = MinPartitionRows
	p := &countingProducer{seen: map[string]int{}}
	r := newRelay(t, dbURL, p, cfg)
	require.False(t, r.store.Partitioned())
	startRelay(t, r)

	written := 0
	write := func(n int) {
		for range n {
			msgs := make([]outbox.Message, 50)
			for i := range msgs {
				msgs[i] = outbox.Message{Topic: "t", Key: []byte(fmt.Sprint(written % 13)), Payload: []byte("x")}
				written++
			}
			writeRows(t, pool, msgs...)
		}
	}
	write(40) // 2,000 rows, some published by now, some not
	converted := make(chan error, 1)
	go func() {
		_, err := pool.Exec(ctx, fmt.Sprintf("CALL outbox_partition('outbox', %d)", MinPartitionRows))
		converted <- err
	}()
	write(40) // writers wait for the conversion's lock, then go on
	require.NoError(t, <-converted)
	write(40)
	require.Eventually(t, func() bool {
		var waiting int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE NOT published").Scan(&waiting))
		return waiting == 0
	}, 30*time.Second, 20*time.Millisecond, "every row is published")
	require.Eventually(t, r.store.Partitioned, 10*time.Second, 20*time.Millisecond, "the relay noticed the new layout")

	var rows int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM outbox").Scan(&rows))
	require.Equal(t, written, rows, "no row lost")
	p.mu.Lock()
	defer p.mu.Unlock()
	require.Len(t, p.seen, written, "every row produced")
	for id, n := range p.seen {
		require.Equal(t, 1, n, "event %s produced once", id)
	}
	require.Eventually(t, func() bool {
		var ahead int64
		require.NoError(t, pool.QueryRow(ctx, "SELECT max(end_id) - (SELECT max(id) FROM outbox) FROM outbox_partitions('outbox')").Scan(&ahead))
		return ahead > MinPartitionRows
	}, 10*time.Second, 20*time.Millisecond, "partitions are kept ahead of the writers")
}

// A partitioned table without the functions that keep its partitions is
// refused at start, naming what to apply.
func TestAPartitionedTableWithoutItsFunctionsIsRefused(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.New(t)
	_, err := dbtest.Pool(t, dbURL).Exec(context.Background(), "DROP FUNCTION outbox_drop(regclass)")
	require.NoError(t, err)
	_, err = New(context.Background(), testConfig(), Source{Name: "test", DatabaseURL: dbURL, Table: "outbox", Topics: []string{"*"}},
		&fakeProducer{}, zaptest.NewLogger(t), NewMetrics(prometheus.NewRegistry()))
	require.ErrorIs(t, err, store.ErrNoPartitionFunctions)
	require.ErrorContains(t, err, "apply outbox.sql")
}

// Another team's outbox in a schema of its own, off the relay's
// search_path: outbox.sql's functions are found in the table's schema, the
// conversion runs from any search_path, and the relay keeps the partitions.
func TestAnOutboxInASchemaOfItsOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	legacy := regexp.MustCompile(`\boutbox\b`).ReplaceAllString(outboxtest.LegacyDDL, "events")
	schema := outboxtest.SchemaWith(t, outbox.DDL+"; "+legacy)
	writeTo := func(table string) {
		w, err := outbox.NewWriter(table)
		require.NoError(t, err)
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			return w.Write(ctx, tx, outbox.Message{Topic: "t", Payload: []byte("x")})
		}))
	}
	writeTo(schema + ".events")
	_, err := pool.Exec(ctx, fmt.Sprintf("CALL %s.outbox_partition('%s.events', %d)", schema, schema, MinPartitionRows))
	require.NoError(t, err, "converted from a search_path without the schema")
	writeTo(schema + ".events")

	cfg := testConfig()
	cfg.PartitionRows = MinPartitionRows
	r, err := New(ctx, cfg, Source{Name: "test", DatabaseURL: dbURL, Table: schema + ".events", Topics: []string{"*"}},
		&fakeProducer{}, zaptest.NewLogger(t), NewMetrics(prometheus.NewRegistry()))
	require.NoError(t, err)
	t.Cleanup(r.Close)
	require.True(t, r.store.Partitioned())
	_, err = r.store.Extend(ctx, r.pool, MinPartitionRows, 5, time.Minute)
	require.NoError(t, err)
	parts, err := r.store.Partitions(ctx, r.pool)
	require.NoError(t, err)
	require.Len(t, parts, 1+6+1, "the first partition (the old table, ids 1 and below), six of 1,000 ids reaching past the highest id (2) plus five partitions, the DEFAULT one")
	require.Equal(t, 2, drain(t, r))
}

// kafkaStalled, which holds partition drops back (a drop would wait on the
// batch's transaction, and writers on the drop), is true only while a
// batch waits with no row acknowledged for the time given.
func TestKafkaStalledSaysWhenABatchWaitsWithoutAcks(t *testing.T) {
	t.Parallel()
	r := &Relay{}
	require.False(t, r.kafkaStalled(time.Second), "no batch in flight")
	r.sending()
	require.False(t, r.kafkaStalled(time.Second), "a batch just sent")
	r.mu.Lock()
	r.acks.inFlightSince = time.Now().Add(-2 * time.Second)
	r.mu.Unlock()
	require.True(t, r.kafkaStalled(time.Second), "in flight for 2 s, nothing acknowledged")
	r.acked()
	require.False(t, r.kafkaStalled(time.Second), "a row acknowledged just now")
	r.sent(1, 0, "")
	require.False(t, r.kafkaStalled(0), "nothing in flight")
}

// Partition DDL that cannot get its lock within ddlLockWait (here a
// transaction holds the table) fails without holding the relay's reads up
// longer, and is tried again seconds later, not a minute: a single failure
// must not leave a minute of rows in the table.
func TestFailedPartitionDDLIsTriedAgainWithinSeconds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := partitionedDB(t, MinPartitionRows)
	pool := dbtest.Pool(t, dbURL)
	writeRows(t, pool, testRows(1500, 7)...)
	holder, err := pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = holder.Rollback(ctx) })
	_, err = holder.Exec(ctx, "SELECT FROM outbox LIMIT 1") // holds the table until it ends
	require.NoError(t, err)

	r, m, logs := partitionsRelay(t, dbURL)
	startRelay(t, r)
	require.Eventually(t, func() bool { return testutil.ToFloat64(m.published.WithLabelValues("test")) == 1500 },
		30*time.Second, 20*time.Millisecond, "the relay publishes while its DDL waits")
	require.Eventually(t, func() bool { return logs.FilterMessageSnippet("making outbox partitions ahead failed").Len() > 0 },
		30*time.Second, 20*time.Millisecond, "making partitions ahead waits for the DEFAULT partition's lock and fails")
	require.Equal(t, []string{"outbox_p1", "outbox_p1001", "outbox_default"}, partitions(t, pool))
	require.NoError(t, holder.Commit(ctx))
	failedAt := time.Now()
	require.Eventually(t, func() bool {
		return slices.Equal(partitions(t, pool), []string{"outbox_p1001", "outbox_p2001", "outbox_p3001", "outbox_default"})
	}, 20*time.Second, 50*time.Millisecond, "partitions are made ahead and p1 is dropped at the next try, after the first backoff (5 s) and a round (2 s)")
	t.Logf("done %s after the holder ended", time.Since(failedAt).Round(time.Millisecond))
}

// Writers that outran the partitions made ahead leave rows in the DEFAULT
// partition, and may still be adding rows there while partitions are
// made: the new ones start above every such row (ATTACH failed on a row
// written after the highest id was read, again and again while writers
// kept writing) and above the id of a writer waiting to write there (which
// failed, its row outside the DEFAULT partition's range once the new
// partitions were attached).
func TestMakingPartitionsCatchesUpWithWritersInTheDefaultPartition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := partitionedDB(t, MinPartitionRows)
	pool := dbtest.Pool(t, dbURL)
	msgs := testRows(2500, 0)
	writeRows(t, pool, msgs...) // 2,001..2,500 in the DEFAULT partition
	first, err := pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = first.Rollback(ctx) })
	require.NoError(t, outbox.Write(ctx, first, msgs[0])) // 2,501, not committed yet

	waiting := func(n int) func() bool {
		return func() bool {
			var count int
			assert.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&count))
			return count == n
		}
	}
	extended := make(chan error, 1)
	go func() {
		_, err := pool.Exec(ctx, "SELECT outbox_extend('outbox', 1000, 2)")
		extended <- err
	}()
	require.Eventually(t, waiting(1), 10*time.Second, 10*time.Millisecond, "making partitions waits for the first writer")
	second, err := pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = second.Rollback(ctx) })
	wrote := make(chan error, 1)
	go func() { wrote <- outbox.Write(ctx, second, msgs[0]) }() // draws 2,502, then waits
	require.Eventually(t, waiting(2), 10*time.Second, 10*time.Millisecond, "a second writer waits behind it")
	require.NoError(t, first.Commit(ctx))
	require.NoError(t, <-extended)
	require.NoError(t, <-wrote, "the waiting writer's row still belongs to the DEFAULT partition")
	require.NoError(t, second.Commit(ctx))
	require.Equal(t, []string{"outbox_p1", "outbox_p1001", "outbox_p2603", "outbox_p3603", "outbox_default"}, partitions(t, pool),
		"the new partitions start a margin (100 ids) above the highest id drawn, 2,502")
	var inDefault int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM outbox_default WHERE id > 2000").Scan(&inDefault))
	require.Equal(t, 502, inDefault)
}

// Writers keep drawing ids while outbox_extend holds its locks, and one
// that crosses the end of the ranges then waits for the DEFAULT partition:
// had the new range taken its id, its statement would fail. So once
// writers are within a margin (a tenth of a partition, here 100 ids) of
// the end, new partitions start that margin above the highest id drawn.
// (The race itself lies inside one statement, out of a test's reach; the
// layout it needs is what is tested.) A conversion, which shuts writers
// out, starts its partitions right above the table's rows.
func TestNewPartitionsStartAMarginAboveWritersNearTheEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, partitionedDB(t, MinPartitionRows))
	writeRows(t, pool, testRows(1950, 0)...) // 51 ids short of the end (2,001)
	_, err := pool.Exec(ctx, "SELECT outbox_extend('outbox', 1000, 2)")
	require.NoError(t, err)
	require.Equal(t, []string{"outbox_p1", "outbox_p1001", "outbox_p2051", "outbox_p3051", "outbox_default"}, partitions(t, pool),
		"the new partitions start 100 ids above the highest id drawn, 1,950")
	writeRows(t, pool, testRows(150, 0)...)
	var inDefault int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM outbox_default").Scan(&inDefault))
	require.Equal(t, 50, inDefault, "ids 2,001..2,050 go to the DEFAULT partition")

	legacy := dbtest.Pool(t, legacyDB(t))
	writeRows(t, legacy, testRows(1950, 0)...)
	_, err = legacy.Exec(ctx, fmt.Sprintf("CALL outbox_partition('outbox', %d)", MinPartitionRows))
	require.NoError(t, err)
	require.Equal(t, []string{"outbox_p0", "outbox_p1951", "outbox_p2951", "outbox_default"}, partitions(t, legacy),
		"converted: the new partitions start right above the highest row")
}

// Rows writers left in the DEFAULT partition while they outran the
// partitions made ahead (the relay down, say) are emptied out once all of
// them are published and the retention has gone by, while writers go on
// writing; a row added to it meanwhile holds the emptying back.
func TestTheDefaultPartitionIsEmptiedWhileWritersGoOn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := partitionedDB(t, MinPartitionRows)
	pool := dbtest.Pool(t, dbURL)
	writeRows(t, pool, testRows(2500, 7)...) // 2,001..2,500 in the DEFAULT partition
	inDefault := func() int {
		var n int
		assert.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM outbox_default").Scan(&n))
		return n
	}
	require.Equal(t, 500, inDefault())

	r, m, _ := partitionsRelay(t, dbURL)
	startRelay(t, r)
	wctx, stop := context.WithCancel(ctx)
	wrote := make(chan int)
	go func() { // a writer going on, 20 rows every 20 ms
		n := 0
		for wctx.Err() == nil {
			assert.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return outbox.Write(ctx, tx, testRows(20, 7)...) }))
			n += 20
			time.Sleep(20 * time.Millisecond)
		}
		wrote <- n
	}()
	t.Cleanup(func() {
		if wctx.Err() == nil {
			stop()
			<-wrote
		}
	})
	require.Eventually(t, func() bool { return inDefault() == 0 }, 30*time.Second, 50*time.Millisecond,
		"the DEFAULT partition is emptied once its rows are published and the retention went by")
	stop()
	n := <-wrote
	require.Positive(t, n)
	require.Eventually(t, func() bool { return testutil.ToFloat64(m.published.WithLabelValues("test")) == float64(2500+n) },
		10*time.Second, 20*time.Millisecond, "every row is published, once")
}

// A table whose outbox_drop predates migration 00032 (another team's that
// has not applied outbox.sql again) gets its DEFAULT partition left alone,
// as emptying it without a second look under the lock could take a row
// committed meanwhile; the relay says so at start, and drops its other
// partitions as before.
func TestAnOutboxDropOfBeforeMigration00032LeavesTheDefaultPartitionAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := partitionedDB(t, MinPartitionRows)
	pool := dbtest.Pool(t, dbURL)
	raw, err := fs.ReadFile(db.Migrations(), "00032_outbox_drop_rechecks_the_default_partition.sql")
	require.NoError(t, err)
	_, down, found := strings.Cut(string(raw), "-- +goose Down")
	require.True(t, found)
	_, err = pool.Exec(ctx, down) // outbox_drop as migration 00029 made it
	require.NoError(t, err)
	writeRows(t, pool, testRows(2500, 7)...) // 2,001..2,500 in the DEFAULT partition

	r, _, logs := partitionsRelay(t, dbURL)
	require.Equal(t, 1, logs.FilterMessageSnippet("predates outbox.sql's of sitewatch's migration 00032").Len())
	startRelay(t, r)
	require.Eventually(t, func() bool { return !slices.Contains(partitions(t, pool), "outbox_p1001") }, 30*time.Second, 50*time.Millisecond,
		"the published partitions are dropped as before")
	// The DEFAULT partition, sealed in the same round as p1001, would be
	// emptied in the round that dropped it, right after it.
	require.Never(t, func() bool {
		var n int
		assert.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM outbox_default").Scan(&n))
		return n != 500
	}, 3*time.Second, 100*time.Millisecond, "the DEFAULT partition is left as it is")
}

// The claim is never a parallel plan, even over a partition the planner
// has no statistics of (a new one, until autovacuum's analyze comes by):
// there its generic plan ran the two look-ups of rows in backoff as
// parallel scans, starting four background workers a claim (49 ms instead
// of 3 over 200,000 rows; 14.6 instead of 2.8 here). The claim runs as the relay's workers run it, on its pool, and is
// explained as prepared, with its generic plan.
func TestTheClaimIsNeverAParallelPlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	_, err := pool.Exec(ctx, `ALTER TABLE outbox_p1 SET (autovacuum_enabled = false);
		INSERT INTO outbox (event_id, topic_name, msg_key, payload)
		SELECT gen_random_uuid(), 't', convert_to((i % 1000)::text, 'UTF8'), convert_to(repeat('x', 250), 'UTF8')
		FROM generate_series(1, 50000) AS i`)
	require.NoError(t, err)
	var analyzed bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT reltuples >= 0 FROM pg_class WHERE oid = 'outbox_p1'::regclass").Scan(&analyzed))
	require.False(t, analyzed, "the partition has no statistics")

	r, _, _ := partitionsRelay(t, dbURL)
	conn, err := r.Pool().Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	// The generic plan, and parallel plans made cheap: 200,000 rows made
	// a parallel plan without these, 50,000 do not yet.
	_, err = conn.Exec(ctx, `SET plan_cache_mode = force_generic_plan; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
		SET min_parallel_table_scan_size = 0; SET min_parallel_index_scan_size = 0`)
	require.NoError(t, err)
	lanes := []int16{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	rows, _, err := r.store.Claim(ctx, conn, lanes, 2000, 1<<20, 1, 1)
	require.NoError(t, err)
	require.Len(t, rows, 2000)
	var name string
	require.NoError(t, conn.QueryRow(ctx,
		"SELECT name FROM pg_prepared_statements WHERE strpos(statement, 'The oldest ' || 'publishable rows') > 0").Scan(&name))
	plan, err := conn.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF) EXECUTE "+pgx.Identifier{name}.Sanitize()+"(2000, '{0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15}', 1048576, 1, 1)")
	require.NoError(t, err)
	lines, err := pgx.CollectRows(plan, pgx.RowTo[string])
	require.NoError(t, err)
	require.NotContains(t, strings.Join(lines, "\n"), "Gather", "the claim's plan")
}

// A partitioned table whose newest partition has a fillfactor above 50
// (another team's, converted by a bare CALL outbox_partition from a table
// at 80) is named at start, with its fillfactor and the remedy. Only the
// newest range partition counts, as the next ones copy it: with it at 50,
// older ones at 80 are not named.
func TestAFillfactorAboveHalfIsNamedAtStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := partitionedDB(t, MinPartitionRows) // outboxtest.LegacyDDL's fillfactor, 80
	pool := dbtest.Pool(t, dbURL)
	const named = "above 50: most publish flips"

	_, _, logs := partitionsRelay(t, dbURL)
	warned := logs.FilterMessageSnippet(named).All()
	require.Len(t, warned, 1)
	require.Contains(t, warned[0].Message, "has a fillfactor of 80, above 50")
	require.Contains(t, warned[0].Message, "apply outbox.sql again")

	var newest string
	require.NoError(t, pool.QueryRow(ctx, `SELECT part::text FROM outbox_partitions('outbox')
		WHERE end_id IS NOT NULL ORDER BY first_id DESC LIMIT 1`).Scan(&newest))
	_, err := pool.Exec(ctx, "ALTER TABLE "+newest+" SET (fillfactor = 50)")
	require.NoError(t, err)
	require.Greater(t, len(partitions(t, pool)), 2, "older partitions stay at 80")
	_, _, logs = partitionsRelay(t, dbURL)
	require.Zero(t, logs.FilterMessageSnippet(named).Len())
}

// outbox_drop looks the DEFAULT partition through again under its lock: a
// row written to it by a transaction that committed while the function
// waited for the lock (after its first look) is not emptied out with the
// published ones.
func TestEmptyingTheDefaultPartitionKeepsARowThatCameMeanwhile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, partitionedDB(t, MinPartitionRows))
	writeRows(t, pool, testRows(2500, 0)...) // 2,001..2,500 in the DEFAULT partition
	_, err := pool.Exec(ctx, "UPDATE outbox SET published = true, published_at = now()")
	require.NoError(t, err)
	late, err := pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = late.Rollback(ctx) })
	require.NoError(t, outbox.Write(ctx, late, testRows(1, 0)...)) // 2,501, not committed yet

	dropped := make(chan int64, 1)
	go func() {
		var waiting *int64
		assert.NoError(t, pool.QueryRow(ctx, "SELECT outbox_drop('outbox_default')").Scan(&waiting))
		dropped <- ptrOr(waiting, 0)
	}()
	require.Eventually(t, func() bool {
		var n int
		assert.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n))
		return n == 1
	}, 10*time.Second, 10*time.Millisecond, "outbox_drop waits for the writer's lock")
	require.NoError(t, late.Commit(ctx))
	require.Equal(t, int64(2501), <-dropped, "the row that came meanwhile waits to be published")
	var left int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM outbox_default").Scan(&left))
	require.Equal(t, 501, left, "nothing was emptied")
}

// Emptying the DEFAULT partition keeps its parked rows, even when the ids
// they are written again with land in it: before, they were written back
// into it, then emptied out with it.
func TestEmptyingTheDefaultPartitionKeepsItsParkedRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, partitionedDB(t, MinPartitionRows))
	writeRows(t, pool, testRows(2500, 0)...) // 2,001..2,500 in the DEFAULT partition; 2,501 next, there too
	_, err := pool.Exec(ctx, `UPDATE outbox SET published = id <> 2100, published_at = now(),
		parked_at = CASE WHEN id = 2100 THEN now() END, last_error = CASE WHEN id = 2100 THEN 'parked here' END`)
	require.NoError(t, err)
	var event string
	require.NoError(t, pool.QueryRow(ctx, "SELECT event_id::text FROM outbox WHERE id = 2100").Scan(&event))

	var waiting *int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT outbox_drop('outbox_default')").Scan(&waiting))
	require.Nil(t, waiting)
	var id int64
	var reason string
	var payload []byte
	require.NoError(t, pool.QueryRow(ctx, "SELECT id, last_error, payload FROM outbox WHERE event_id = $1 AND parked_at IS NOT NULL", event).
		Scan(&id, &reason, &payload), "the parked row is still there")
	require.Equal(t, int64(2501), id, "written again, into the DEFAULT partition")
	require.Equal(t, "parked here", reason)
	require.Equal(t, []byte("x"), payload)
	var left int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM outbox_default").Scan(&left))
	require.Equal(t, 1, left, "the rest was emptied out")
}

// The DEFAULT partition has the look-up indexes of the others, and a table
// made without them gets them the next time partitions are made: rows
// piled up there (writers that outran the ranges) made each claim read all
// of them, looking for rows in backoff.
func TestTheDefaultPartitionHasTheLookUpIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, partitionedDB(t, MinPartitionRows))
	predicates := func() []string {
		rows, err := pool.Query(ctx, `SELECT coalesce(pg_get_expr(indpred, indrelid), '') FROM pg_index
			WHERE indrelid = 'outbox_default'::regclass ORDER BY 1`)
		require.NoError(t, err)
		preds, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return preds
	}
	want := []string{"", "(next_attempt_at IS NOT NULL)", "(parked_at IS NOT NULL)"}
	require.Equal(t, want, predicates(), "made with the table")

	_, err := pool.Exec(ctx, `DO $$DECLARE i regclass; BEGIN
		FOR i IN SELECT indexrelid FROM pg_index WHERE indrelid = 'outbox_default'::regclass AND indpred IS NOT NULL LOOP
			EXECUTE format('DROP INDEX %s', i);
		END LOOP; END$$`)
	require.NoError(t, err)
	require.Equal(t, []string{""}, predicates(), "as before migration 00033")
	writeRows(t, pool, testRows(1500, 0)...)
	var created int
	require.NoError(t, pool.QueryRow(ctx, "SELECT outbox_extend('outbox', $1, 2)", MinPartitionRows).Scan(&created))
	require.Positive(t, created)
	require.Equal(t, want, predicates(), "made again with the next partitions")
}

// The publish flip stays in each row's page (a HOT update): a batch flips
// every row of a page in one statement, and sitewatch's outbox (migration
// 00034, outbox.sql) leaves half of each page for their new versions. At
// the fillfactor of 80 before, three in four rows of check-result size
// moved to another page, adding an entry to each unique index.
func TestThePublishFlipStaysInEachRowsPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	const n = 1000
	msgs := make([]outbox.Message, n)
	for i := range msgs {
		msgs[i] = outbox.Message{Topic: "t", Key: []byte(strconv.Itoa(i % 100)), Payload: payload,
			Headers: map[string]string{"ce_type": "io.sitewatch.check.completed"}}
	}
	writeRows(t, pool, msgs...)
	pages := func() map[int64]int64 {
		rows, err := pool.Query(ctx, "SELECT id, (ctid::text::point)[0]::bigint FROM outbox")
		require.NoError(t, err)
		out := map[int64]int64{}
		var id, page int64
		_, err = pgx.ForEachRow(rows, []any{&id, &page}, func() error { out[id] = page; return nil })
		require.NoError(t, err)
		return out
	}
	before := pages()
	require.Len(t, before, n)

	cfg := testConfig()
	cfg.BatchSize = n // one statement flips them all
	require.Equal(t, n, drain(t, newRelay(t, dbURL, &fakeProducer{}, cfg)))
	moved := 0
	for id, page := range pages() {
		if before[id] != page {
			moved++
		}
	}
	require.Zero(t, moved, "rows whose flip left their page, of %d", n)
}

// ptrOr is *p, or or if p is nil.
func ptrOr[T any](p *T, or T) T {
	if p == nil {
		return or
	}
	return *p
}
