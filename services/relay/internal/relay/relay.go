// Package relay publishes the rows of one outbox table (a source) to
// Kafka. Workers claim batches of the lanes this replica leases, produce
// each row to its topic, wait for every delivery report, and flip
// `published` for the rows Kafka acknowledged, all in the claiming
// transaction. A crash before the commit re-publishes that batch: delivery
// is at least once, and consumers dedupe on ce_id. While Kafka cannot take
// a row (too few replicas in sync, no leader, out of reach) its batch
// waits, as long as the producer has no message timeout (the relay's
// default), so a key's rows keep their order through any outage.
//
// A partitioned outbox (outbox.sql) keeps itself small: the replica that
// leases lane 0 creates partitions ahead of the writers and drops each one
// whose rows are all published a retention after the floor passed it
// (keepPartitions). A table of the earlier, single-table layout is served
// too, its published rows deleted by retention (retain).
package relay

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/config"
	"github.com/sitewatch/sitewatch/platform/lease"
	"github.com/sitewatch/sitewatch/platform/ops"
	"github.com/sitewatch/sitewatch/platform/retry"
	"github.com/sitewatch/sitewatch/services/relay/internal/store"
)

// Source is one outbox table, the topics its rows may go to, and the
// headers the relay adds to its messages.
type Source struct {
	Name        string
	DatabaseURL string
	Table       string
	Topics      []string // glob patterns (path.Match); a row for any other topic is parked

	// CESource and CEType are the CloudEvents ce_source and ce_type of
	// messages whose writer set none; IDHeader names the header that
	// carries the outbox row's id. Empty adds no such header.
	CESource string
	CEType   string
	IDHeader string
}

// Allows reports whether topic matches one of the source's patterns.
func (s Source) Allows(topic string) bool {
	for _, p := range s.Topics {
		if ok, _ := path.Match(p, topic); ok {
			return true
		}
	}
	return false
}

// FieldError is a problem with one field of a Source, named as in a
// sources file: name, database_url, table or topics.
type FieldError struct {
	Field string
	Err   error
}

func (e FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e FieldError) Unwrap() error { return e.Err }

// Validate reports every field of the source that cannot work, each as a
// FieldError.
func (s Source) Validate() error {
	var errs []error
	bad := func(field string, err error) { errs = append(errs, FieldError{field, err}) }
	if s.Name == "" {
		bad("name", errors.New("required"))
	}
	if s.DatabaseURL == "" {
		bad("database_url", errors.New("required"))
	} else if _, err := pgx.ParseConfig(s.DatabaseURL); err != nil {
		bad("database_url", err)
	}
	if _, err := outbox.QuoteTable(s.Table); err != nil {
		bad("table", err)
	}
	if len(s.Topics) == 0 {
		bad("topics", errors.New(`at least one pattern required (RELAY_TOPICS, e.g. "orders.*"; "*" allows every topic)`))
	}
	for _, p := range s.Topics {
		if _, err := path.Match(p, ""); err != nil {
			bad("topics", fmt.Errorf("pattern %q: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// Config tunes every source's loop.
type Config struct {
	BatchSize         int
	Workers           int           // concurrent batches per source, each on its own lanes
	PollInterval      time.Duration // fallback when no notification arrives
	Rebalance         time.Duration
	SQLTimeout        time.Duration // deadline of a batch's claim, and of its flip and commit
	DrainTimeout      time.Duration // how long a batch still waits for Kafka once shutdown began
	MaxMessageBytes   int64         // key + payload; a larger row is parked unread (the producer's message.max.bytes)
	Retry             store.Retry
	Retention         time.Duration // published rows are kept at least this long, then go with their partition (or are deleted); 0 keeps them
	RetentionInterval time.Duration
	RetentionBatch    int
	// PartitionRows is the size, in ids, of the partitions the relay
	// creates ahead of the writers of a partitioned outbox.
	PartitionRows int64
}

// DefaultPartitionRows is the partition size of outbox.sql and of the relay.
const DefaultPartitionRows = 1_000_000

// DefaultWorkers and DefaultBatchSize are the relay's defaults: 4,000 rows
// in flight. Each worker's claim also reads its co-workers' rows (keys
// hash to lanes), so more workers cost the database more CPU a row
// (README: Workers cost the database).
const (
	DefaultWorkers   = 2
	DefaultBatchSize = 2000
)

// MinPartitionRows is the smallest partition size the relay accepts.
const MinPartitionRows = 1000

// Validate reports every setting that cannot work; it does not change c.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.BatchSize >= 1, "batch size %d: want at least 1", c.BatchSize)
	check(c.Workers >= 1 && c.Workers <= Lanes, "workers %d: want 1..%d", c.Workers, Lanes)
	check(c.PollInterval > 0, "poll interval %s: want more than 0", c.PollInterval)
	check(c.Rebalance > 0, "rebalance interval %s: want more than 0", c.Rebalance)
	check(c.SQLTimeout > 0, "SQL timeout %s: want more than 0", c.SQLTimeout)
	check(c.DrainTimeout > 0, "drain timeout %s: want more than 0", c.DrainTimeout)
	check(c.MaxMessageBytes >= 1000, "max message bytes %d: want at least 1000", c.MaxMessageBytes)
	check(c.Retry.Backoff > 0, "retry backoff %s: want more than 0", c.Retry.Backoff)
	check(c.Retry.MaxBackoff >= c.Retry.Backoff, "retry max backoff %s: want at least the backoff %s", c.Retry.MaxBackoff, c.Retry.Backoff)
	check(c.Retry.MaxAttempts >= 1, "retry max attempts %d: want at least 1", c.Retry.MaxAttempts)
	check(c.Retention >= 0, "retention %s: want 0 (keep) or more", c.Retention)
	check(c.PartitionRows >= MinPartitionRows, "partition rows %d: want at least %d", c.PartitionRows, MinPartitionRows)
	if c.Retention > 0 {
		check(c.RetentionInterval > 0, "retention interval %s: want more than 0", c.RetentionInterval)
		check(c.RetentionBatch >= 1, "retention batch %d: want at least 1", c.RetentionBatch)
	}
	return errors.Join(errs...)
}

// Lanes is the number of lanes of an outbox table (the lane column).
const Lanes = outbox.Lanes

// workerBackoff paces a worker's retries of a failed batch or while Kafka
// is unavailable.
var workerBackoff = retry.Policy{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.2}

// Producer is the part of *kafka.Producer the relay uses.
type Producer interface {
	Produce(msg *kafka.Message, deliveryChan chan kafka.Event) error
	// Purge drops the messages not yet acknowledged (at shutdown, once
	// DrainTimeout is over); each still gets its delivery report.
	Purge(flags int) error
}

// Relay publishes one source.
type Relay struct {
	cfg      Config
	src      Source
	pool     *pgxpool.Pool
	store    *store.Store
	floor    *store.Floor // where claims start; kept by Run
	coord    *lease.Coordinator
	producer Producer
	logger   *zap.Logger
	metrics  *Metrics
	mu       sync.Mutex
	lastLoop time.Time
	acks     ackState        // guarded by mu
	waiting  atomic.Int32    // workers idle until a notification or the poll
	nudges   []chan struct{} // one per worker: wakes it (the floor went down)
	cursors  []cursor        // one per worker, only its own goroutine's
	onFatal  func(error)     // set by Run: stops every worker
}

// New checks cfg and src, connects to the source's database and checks
// its table.
func New(ctx context.Context, cfg Config, src Source, producer Producer, logger *zap.Logger, m *Metrics) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("relay configuration: %w", err)
	}
	if err := src.Validate(); err != nil {
		return nil, fmt.Errorf("source %q: %w", src.Name, err)
	}
	logger = logger.With(zap.String("source", src.Name))
	st, err := store.New(src.Table)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", src.Name, err)
	}
	// A batch per worker, retention, metrics and /readyz at once (the
	// lease has a connection of its own).
	pool, err := config.OpenPool(ctx, src.DatabaseURL, "sitewatch-relay", cfg.Workers+3, noParallelQuery)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", src.Name, err)
	}
	info, err := st.Info(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("source %s: %w", src.Name, err)
	}
	warnAboutTable(logger, src.Table, info)
	lanes := LaneLease(src, info)
	lanes.Rebalance, lanes.StatementTimeout, lanes.DeadPeer = cfg.Rebalance, 10*time.Second, 10*time.Second
	coord, err := lease.New(lanes, logger)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("source %s: %w", src.Name, err)
	}
	r := &Relay{cfg: cfg, src: src, pool: pool, store: st, floor: st.NewFloor(), coord: coord, producer: producer,
		logger: logger, metrics: m, lastLoop: time.Now(), nudges: make([]chan struct{}, cfg.Workers),
		cursors: make([]cursor, cfg.Workers)}
	for w := range r.nudges {
		r.nudges[w] = make(chan struct{}, 1)
	}
	m.add(r)
	return r, nil
}

// noParallelQuery is the relay's sessions': no parallel plans. Its
// statements read a batch's worth of rows by index, but a partition the
// planner has no statistics of (a new one, until autovacuum's analyze
// comes by, which on PostgreSQL's defaults is late) looks full to it, and
// it planned the claim's two look-ups of rows in backoff as parallel scans:
// each claim then started four background workers, and took 49 ms instead
// of 3 over 200,000 such rows (TestTheClaimIsNeverAParallelPlan). In the
// soak on PostgreSQL's default autovacuum settings the claim took 78-98 µs
// a row, summed over workers; without parallel plans it takes 26-39.
var noParallelQuery = config.Setting{Name: "max_parallel_workers_per_gather", Value: "0"}

// warnAboutTable logs TableAdvice: at start, and when a conversion changes
// the layout.
func warnAboutTable(logger *zap.Logger, table string, info store.TableInfo) {
	for _, advice := range TableAdvice(info) {
		logger.Warn(advice, zap.String("table", table))
	}
}

// TableAdvice says what of an outbox table's layout makes the relay serve
// it less well than outbox.sql's, and how to mend it; nothing when nothing
// does. The relay logs it at start; relay status prints it.
func TableAdvice(info store.TableInfo) []string {
	if !info.Partitioned {
		return []string{"the outbox table is of the earlier, unpartitioned layout: it is published as before, but its size depends on vacuum keeping up; " +
			"convert it in place (no row is copied or published again) with outbox.sql's CALL outbox_partition(table), which the relay notices within seconds"}
	}
	var advice []string
	if !info.EmptiesDefault {
		advice = append(advice, "the outbox table's outbox_drop predates outbox.sql's of sitewatch's migration 00032: rows writers leave in the DEFAULT partition "+
			"(past the partitions made ahead) are published but not emptied out; apply outbox.sql again")
	}
	if info.Fillfactor > 50 {
		advice = append(advice, fmt.Sprintf("the outbox table's newest partition, which the next ones copy, has a fillfactor of %d, above 50: most publish flips of a batch "+
			"leave their page (no HOT update; each adds an entry to every unique index) and cost about 2.5 times as much; apply outbox.sql again, "+
			"which sets 50", info.Fillfactor))
	}
	return advice
}

// LaneLease is the lease of src's lanes: the outbox table's oid is the
// namespace, so relays of different tables, and the monitor's shards of
// the sites table, never meet.
func LaneLease(src Source, info store.TableInfo) lease.Config {
	return lease.Config{DatabaseURL: src.DatabaseURL, AppName: "sitewatch-relay-lease", Group: "lanes of " + info.Channel,
		Key1: int32(info.OID), ShardBase: 0, Shards: Lanes, MemberBase: 1 << 16, MaxMembers: 1024, Channel: info.Channel}
}

// Close releases the database pool.
func (r *Relay) Close() { r.pool.Close() }

// Pool is the source's connection pool, for readiness checks.
func (r *Relay) Pool() *pgxpool.Pool { return r.pool }

// Name is the source's name.
func (r *Relay) Name() string { return r.src.Name }

// ackState is what /readyz and /healthz know of Kafka's delivery reports.
type ackState struct {
	lastAck time.Time
	// inFlight batches wait for delivery reports, since inFlightSince.
	inFlight      int
	inFlightSince time.Time
	// failingSince is when a batch first got a row back unacknowledged
	// for a reason that passes (a message timeout, too few replicas in
	// sync, no leader); zero once a batch gets every row through.
	failingSince time.Time
	why          string
}

// LastLoop is when a worker last finished a turn, for the liveness check.
// A batch waiting for Kafka is not stalled: /readyz tells of that.
func (r *Relay) LastLoop() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.acks.inFlight > 0 {
		return time.Now()
	}
	return r.lastLoop
}

// sending notes a batch's messages handed to the producer.
func (r *Relay) sending() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.acks.inFlight == 0 {
		r.acks.inFlightSince = time.Now()
	}
	r.acks.inFlight++
}

// acked notes a row Kafka acknowledged.
func (r *Relay) acked() {
	r.mu.Lock()
	r.acks.lastAck = time.Now()
	r.mu.Unlock()
}

// sent notes a batch's outcome once every report is in.
func (r *Relay) sent(acked, transient int, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.acks.inFlight--
	switch {
	case transient > 0:
		if r.acks.failingSince.IsZero() {
			r.acks.failingSince = time.Now()
		}
		r.acks.why = why
	case acked > 0:
		r.acks.failingSince, r.acks.why = time.Time{}, ""
	}
}

// kafkaStalled reports whether a batch waits for Kafka with no row
// acknowledged for longer than after.
func (r *Relay) kafkaStalled(after time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.acks
	if a.inFlight == 0 {
		return false
	}
	return time.Since(a.inFlightSince) > after && time.Since(a.lastAck) > after
}

// Publishing says why Kafka acknowledges none of the relay's rows, when
// for longer than after rows have waited for Kafka (a batch in flight, or
// rows that came back unacknowledged and are sent again) with none
// acknowledged: for /readyz.
func (r *Relay) Publishing(after time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.acks
	var since time.Time // rows have waited since
	if a.inFlight > 0 {
		since = a.inFlightSince
	}
	if !a.failingSince.IsZero() && (since.IsZero() || a.failingSince.Before(since)) {
		since = a.failingSince
	}
	if since.IsZero() {
		return nil
	}
	if a.lastAck.After(since) {
		since = a.lastAck
	}
	quiet := time.Since(since)
	if quiet < after {
		return nil
	}
	why := a.why
	if why == "" {
		why = fmt.Sprintf("%d batches wait for Kafka's delivery reports", a.inFlight)
	}
	return fmt.Errorf("no row acknowledged by Kafka for %s, the rows wait unflipped: %s", quiet.Round(time.Second), why)
}

func (r *Relay) touch() {
	r.mu.Lock()
	r.lastLoop = time.Now()
	r.mu.Unlock()
}

// ErrFatal wraps a producer error librdkafka calls fatal: the producer
// cannot go on (e.g. its idempotence state is lost), so the relay stops
// with it rather than park every row.
var ErrFatal = errors.New("fatal Kafka producer error")

// Run publishes until ctx ends or the producer fails fatally, which it
// returns. Each worker finishes its batch in flight (produced,
// acknowledged, flipped, committed); then the lanes are given up.
func (r *Relay) Run(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var fatal atomic.Pointer[error]
	r.onFatal = func(err error) {
		fatal.CompareAndSwap(nil, &err)
		stop()
	}
	coordCtx, stopCoord := context.WithCancel(context.WithoutCancel(ctx))
	coordDone := make(chan struct{})
	wakes := make([]<-chan struct{}, r.cfg.Workers)
	for w := range wakes {
		wakes[w] = r.coord.Subscribe()
	}
	go func() {
		defer close(coordDone)
		r.coord.Run(coordCtx)
	}()

	var wg sync.WaitGroup
	for w := range r.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.work(ctx, w, wakes[w], r.nudges[w])
		}()
	}
	if r.cfg.Retention > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.retain(ctx)
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		r.keepFloor(ctx)
	}()
	go func() {
		defer wg.Done()
		r.keepPartitions(ctx)
	}()
	wg.Wait()
	stopCoord()
	<-coordDone
	if err := fatal.Load(); err != nil {
		return *err
	}
	return nil
}

func (r *Relay) work(ctx context.Context, worker int, wake, nudge <-chan struct{}) {
	backoff := retry.NewBackoff(workerBackoff)
	for ctx.Err() == nil {
		res, err := r.publishBatch(ctx, worker)
		r.touch()
		var wait time.Duration
		switch {
		case errors.Is(err, ErrFatal):
			r.logger.Error("the Kafka producer failed fatally; stopping the relay", zap.Error(err))
			r.onFatal(err)
			return
		case err != nil:
			wait = backoff.Next()
			r.logger.Warn("publishing outbox batch failed; retrying", zap.Int("worker", worker),
				zap.Error(err), zap.Duration("retry_in", wait))
		case res.Transient > 0:
			wait = backoff.Next()
			r.logger.Warn("Kafka is not acknowledging; the rows stay pending and are retried",
				zap.Int("worker", worker), zap.Int("rows", res.Transient), zap.String("error", res.TransientErr),
				zap.Duration("retry_in", wait))
		case res.Claimed == r.cfg.BatchSize:
			backoff.Reset()
			continue // more rows are likely waiting
		default:
			backoff.Reset()
			r.idle(ctx, wake, nudge, r.cfg.PollInterval)
			continue
		}
		// Backing off: a notification does not cut the wait short.
		retry.Sleep(ctx, wait)
	}
}

// idle waits for a notification, a nudge, the poll interval or the end of ctx.
func (r *Relay) idle(ctx context.Context, wake, nudge <-chan struct{}, poll time.Duration) {
	r.waiting.Add(1)
	defer r.waiting.Add(-1)
	t := time.NewTimer(poll)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-wake:
	case <-nudge:
	case <-t.C:
	}
}

// Result is what one batch did.
type Result struct {
	Claimed      int
	Published    int
	Failed       int // refused by Kafka for this row; retried after a backoff
	Parked       int
	Transient    int // not acknowledged because Kafka is unavailable; retried, not counted against the row
	TransientErr string
	Deferred     int // left for the next batch to keep their key's order
}

// publishBatch runs one claim → produce → flip → commit cycle on the lanes
// of worker. The batch in flight is finished after ctx ends: its SQL steps
// each have SQLTimeout, and it waits DrainTimeout more for Kafka.
func (r *Relay) publishBatch(ctx context.Context, worker int) (Result, error) {
	lanes, release := r.coord.Acquire(worker, r.cfg.Workers)
	defer release()
	if len(lanes) == 0 {
		return Result{}, nil
	}
	return r.publishFrom(ctx, lanes, &r.cursors[worker])
}

// cursor is where a worker's next claim starts: past the rows of its lanes
// its batches have seen to the end, which the floor (where claims start
// otherwise) trails by up to a second's worth of rows, each of which a
// claim from the floor steps over. It starts at no row of the lanes that
// still waits: none its batch left unacknowledged, deferred or refused,
// none waiting out a retry backoff. It is good for one lane set and until
// the floor changes (Floor.Gen): then claims start at the floor again,
// where a row committed late (below the cursor) is found.
type cursor struct {
	lanes string
	gen   uint64
	next  int64
}

func (r *Relay) publish(ctx context.Context, lanes []int16) (Result, error) {
	return r.publishFrom(ctx, lanes, nil)
}

// publishFrom is publish from the cursor cur, when good, and moves it.
func (r *Relay) publishFrom(ctx context.Context, lanes []int16, cur *cursor) (Result, error) {
	var res Result
	start := time.Now()
	sw := ops.StartStopwatch() // the claim's lap includes beginning the transaction
	sql := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), r.cfg.SQLTimeout)
	}
	cctx, cancel := sql()
	defer cancel()
	// Read committed whatever the database's default: the claim's snapshot
	// must be taken once the lanes' locks are held (store.Claim).
	tx, err := r.pool.BeginTx(cctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return res, fmt.Errorf("beginning outbox transaction: %w", err)
	}
	defer func() {
		rctx, cancel := sql()
		defer cancel()
		_ = tx.Rollback(rctx)
	}()

	gen, floor, from, laneSet := r.floor.Gen(), r.floor.ID(), int64(0), ""
	if cur != nil {
		laneSet = fmt.Sprint(lanes)
		if cur.lanes == laneSet && cur.gen == gen {
			from = cur.next
		}
	}
	rows, retrying, err := r.store.Claim(cctx, tx, lanes, r.cfg.BatchSize, r.cfg.MaxMessageBytes, floor, from)
	sw.Lap(r.metrics.step(r.src.Name, "claim"))
	if err != nil {
		return res, err
	}
	res.Claimed = len(rows)
	if len(rows) == 0 {
		return res, tx.Commit(cctx)
	}

	var sendable []store.Row
	var forbidden []int64
	var invalid []store.Row // can never be produced: parked at once with the reason
	for _, row := range rows {
		switch {
		case row.Problem != "":
			invalid = append(invalid, row)
		case r.src.Allows(row.Topic):
			sendable = append(sendable, row)
		default:
			forbidden = append(forbidden, row.ID)
		}
	}
	out := r.produce(ctx, sendable)
	sw.Lap(r.metrics.step(r.src.Name, "produce"))

	// However long Kafka took, what it acknowledged is flipped.
	ctx, cancel = sql()
	defer cancel()
	if err := r.store.MarkPublished(ctx, tx, out.acked); err != nil {
		return res, err
	}
	parked, err := r.store.MarkFailed(ctx, tx, out.failedIDs, out.failedErrs, r.cfg.Retry)
	if err != nil {
		return res, err
	}
	if len(forbidden) > 0 {
		reason := fmt.Sprintf("topic not allowed for source %s (allowed: %s)", r.src.Name, strings.Join(r.src.Topics, ", "))
		if err := r.store.Park(ctx, tx, forbidden, reason); err != nil {
			return res, err
		}
	}
	for _, row := range invalid {
		if err := r.store.Park(ctx, tx, []int64{row.ID}, row.Problem); err != nil {
			return res, err
		}
	}
	sw.Lap(r.metrics.step(r.src.Name, "flip"))
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("committing outbox batch: %w", err)
	}
	sw.Lap(r.metrics.step(r.src.Name, "commit"))
	if cur != nil {
		*cur = cursor{lanes: laneSet, gen: gen, next: nextClaim(rows, sendable, out.acked, retrying)}
	}
	if out.fatal != nil { // what was acknowledged is flipped; now stop
		return res, fmt.Errorf("%w: %w", ErrFatal, out.fatal)
	}
	res.Published, res.Failed, res.Parked = len(out.acked), len(out.failedIDs), len(parked)+len(forbidden)+len(invalid)
	res.Transient, res.TransientErr, res.Deferred = out.transient, out.transientErr, out.deferred
	r.metrics.observe(r.src.Name, res, map[string]int{"attempts": len(parked), "topic_not_allowed": len(forbidden),
		"invalid_row": len(invalid)}, time.Since(start))
	if len(invalid) > 0 {
		r.logger.Error("parked rows that can never be produced", zap.Int("rows", len(invalid)),
			zap.Int64("first_id", invalid[0].ID), zap.String("first_reason", invalid[0].Problem))
	}
	if len(forbidden) > 0 {
		r.logger.Error("parked rows whose topic this source may not publish to",
			zap.Int("rows", len(forbidden)), zap.Int64("first_id", forbidden[0]), zap.Strings("allowed", r.src.Topics))
	}
	if len(out.failedIDs) > 0 {
		r.logger.Warn("Kafka refused outbox rows; retrying them after a backoff",
			zap.Int("rows", len(out.failedIDs)), zap.Int64("first_id", out.failedIDs[0]), zap.String("first_error", out.failedErrs[0]),
			zap.Int("parked", len(parked)))
	}
	return res, nil
}

// nextClaim is where the next claim of the lanes of a batch may start: past
// its rows, but at its lowest sendable row Kafka did not acknowledge and at
// the lowest row waiting out a backoff (retrying, or 0).
func nextClaim(rows, sendable []store.Row, acked []int64, retrying int64) int64 {
	next := rows[len(rows)-1].ID + 1
	if retrying > 0 {
		next = min(next, retrying)
	}
	if len(acked) < len(sendable) {
		done := make(map[int64]bool, len(acked))
		for _, id := range acked {
			done[id] = true
		}
		for _, row := range sendable {
			if !done[row.ID] {
				next = min(next, row.ID)
				break // rows are in id order
			}
		}
	}
	return next
}

type produced struct {
	fatal        error
	deferred     int
	acked        []int64
	failedIDs    []int64
	failedErrs   []string
	transient    int
	transientErr string
}

// produce sends every row and waits for every delivery report: until
// Kafka acknowledges or refuses each (or the producer's message.timeout.ms
// passes), and once ctx ends, for DrainTimeout more; then the producer's
// messages are purged, and their rows wait unflipped for the next relay.
func (r *Relay) produce(ctx context.Context, rows []store.Row) produced {
	var out produced
	r.sending()
	defer func() { r.sent(len(out.acked), out.transient, out.transientErr) }()
	reports := make(chan kafka.Event, len(rows))
	sent := 0
	fail := func(row *store.Row, err error) {
		var kerr kafka.Error
		if errors.As(err, &kerr) && kerr.IsFatal() {
			// Not the row's fault: it stays pending for the next relay.
			out.fatal = err
			out.transient++
			return
		}
		if transient(err) {
			out.transient++
			out.transientErr = err.Error()
			return
		}
		out.failedIDs = append(out.failedIDs, row.ID)
		out.failedErrs = append(out.failedErrs, err.Error())
	}
	// Per-key order inside a batch: a row whose key has a retried row or a
	// row refused on the spot earlier in the batch waits for the next batch,
	// so it cannot reach Kafka before that row. (A first attempt the broker
	// rejects after the fact, e.g. over the topic's size limit, can still
	// let a later row of its key through first; see the README.)
	held := map[string]bool{}
	buf := make([]byte, 0, len(rows)*messageHeaderBytes)
	for i := range rows {
		row := &rows[i]
		if row.Key != nil && held[string(row.Key)] {
			out.deferred++
			continue
		}
		if err := r.producer.Produce(r.message(row, &buf), reports); err != nil {
			fail(row, err)
			if row.Key != nil {
				held[string(row.Key)] = true
			}
			continue
		}
		sent++
		if row.Attempts > 0 && row.Key != nil {
			held[string(row.Key)] = true
		}
	}
	done, drain := ctx.Done(), (<-chan time.Time)(nil)
	for sent > 0 {
		var ev kafka.Event
		select {
		case ev = <-reports:
			sent--
		case <-done:
			done = nil
			t := time.NewTimer(r.cfg.DrainTimeout)
			defer t.Stop()
			drain = t.C
			continue
		case <-drain:
			drain = nil
			r.logger.Warn("shutting down: Kafka has not acknowledged every row of the batch; purging them, they wait unflipped",
				zap.Int("rows", sent), zap.Duration("waited_after_shutdown", r.cfg.DrainTimeout))
			if err := r.producer.Purge(kafka.PurgeQueue | kafka.PurgeInFlight | kafka.PurgeNonBlocking); err != nil {
				r.logger.Warn("purging the producer's queues failed", zap.Error(err))
			}
			continue
		}
		m, ok := ev.(*kafka.Message)
		if !ok {
			continue // only messages are sent on a delivery channel
		}
		row := m.Opaque.(*store.Row)
		if err := m.TopicPartition.Error; err != nil {
			fail(row, err)
			continue
		}
		r.acked()
		out.acked = append(out.acked, row.ID)
	}
	return out
}

// transient reports whether err says Kafka is unavailable rather than that
// it refuses this message; such rows are retried without using up attempts.
func transient(err error) bool {
	var kerr kafka.Error
	if !errors.As(err, &kerr) {
		return false
	}
	switch kerr.Code() {
	case kafka.ErrUnknownTopicOrPart, kafka.ErrUnknownTopic, kafka.ErrMsgSizeTooLarge, kafka.ErrInvalidMsgSize,
		kafka.ErrTopicAuthorizationFailed, kafka.ErrTopicException, kafka.ErrInvalidRecord, kafka.ErrPolicyViolation,
		kafka.ErrRecordListTooLarge, kafka.ErrInvalidMsg, kafka.ErrInvalidArg:
		return false
	case kafka.ErrMsgTimedOut, kafka.ErrTimedOut, kafka.ErrTransport, kafka.ErrAllBrokersDown, kafka.ErrQueueFull,
		kafka.ErrRequestTimedOut, kafka.ErrNotEnoughReplicas, kafka.ErrNotEnoughReplicasAfterAppend,
		kafka.ErrLeaderNotAvailable, kafka.ErrNotLeaderForPartition, kafka.ErrBrokerNotAvailable,
		kafka.ErrNetworkException, kafka.ErrDestroy, kafka.ErrPurgeQueue, kafka.ErrPurgeInflight:
		return true
	}
	return kerr.IsRetriable()
}

// messageHeaderBytes is about what the header values of a message take:
// a batch's buffer of them starts at that much a row.
const messageHeaderBytes = 160

// message builds the Kafka message: key, value and headers as written, plus
// the CloudEvents binary-mode headers the writer did not set itself. The
// headers' values are appended to *buf, a batch's, and cut from it: a
// message took twelve allocations, a few bytes each, with each value its
// own. The message refers to row (its topic, and as its Opaque, which the
// delivery report carries back), which must outlive it.
func (r *Relay) message(row *store.Row, buf *[]byte) *kafka.Message {
	headers := make([]kafka.Header, 0, len(row.Headers)+6)
	value := func(appendValue func([]byte) []byte) []byte {
		from := len(*buf)
		*buf = appendValue(*buf)
		return (*buf)[from:len(*buf):len(*buf)]
	}
	for k, v := range row.Headers {
		headers = append(headers, kafka.Header{Key: k, Value: value(func(b []byte) []byte { return append(b, v...) })})
	}
	add := func(k string, appendValue func([]byte) []byte) {
		if _, ok := row.Headers[k]; !ok {
			if v := value(appendValue); len(v) > 0 {
				headers = append(headers, kafka.Header{Key: k, Value: v})
			}
		}
	}
	text := func(s string) func([]byte) []byte { return func(b []byte) []byte { return append(b, s...) } }
	add("ce_specversion", text("1.0"))
	add("ce_id", text(row.EventID))
	add("ce_source", text(r.src.CESource))
	add("ce_type", text(r.src.CEType))
	add("ce_time", func(b []byte) []byte { return row.CreatedAt.UTC().AppendFormat(b, time.RFC3339Nano) })
	if r.src.IDHeader != "" {
		add(r.src.IDHeader, func(b []byte) []byte { return strconv.AppendInt(b, row.ID, 10) })
	}
	return &kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &row.Topic, Partition: kafka.PartitionAny},
		Key:            row.Key,
		Value:          row.Payload,
		Headers:        headers,
		Opaque:         row,
	}
}

// floorEvery is how often the claims' floor is refreshed: how far behind
// the oldest waiting row it trails, and how long a row that turns up below
// it (see store.Floor) waits at most.
const floorEvery = time.Second

// floorTimeout bounds one refresh: a scan of the index of waiting rows.
const floorTimeout = 10 * time.Second

// keepFloor refreshes the claims' floor until ctx ends. A failed refresh
// leaves the floor where it was, which is never above a waiting row.
func (r *Relay) keepFloor(ctx context.Context) {
	for retry.Sleep(ctx, floorEvery) {
		fctx, cancel := context.WithTimeout(ctx, floorTimeout)
		_, err := r.floor.Refresh(fctx, r.pool)
		cancel()
		if err != nil && ctx.Err() == nil {
			r.logger.Warn("refreshing where claims start failed; claims go on from the last floor", zap.Error(err))
		}
	}
}

// Partitions of a partitioned outbox are tended every partitionEvery by
// the replica that leases lane 0: partitionsAhead of them or more (see
// writerPace) are kept ahead of the writers, and each partition the floor
// has passed is checked once for a waiting row the floor passed over, then
// dropped once Retention has gone by. Both are DDL that waits at most
// ddlLockWait for its lock while the table's other users queue behind the
// request: a drop locks the table (writers wait), making a partition locks
// the DEFAULT partition (the relays' reads wait), so a transaction that
// holds the table (a batch waiting on Kafka, a long report, pg_dump) makes
// it fail. So no drop is tried while a batch of this relay waits on Kafka,
// and after DDL that failed none is tried for a while (ddlBackoff): 5 s,
// then twice as long after each failure in a row, up to a minute. A single
// failure costs 5 s of drops, not a minute of rows in the table; a table
// that stays busy holds its users up for ddlLockWait a minute at most.
// Meanwhile rows past the partitions made ahead go to the DEFAULT
// partition.
const (
	partitionEvery   = 2 * time.Second
	partitionsAhead  = 2
	partitionTimeout = time.Minute
	ddlLockWait      = time.Second
	kafkaStalledFor  = time.Second
)

var ddlBackoff = retry.Policy{Initial: 5 * time.Second, Max: time.Minute, Jitter: 0.2}

// The partitions made ahead last the writers aheadFor at their fastest
// lately (their peak pace, which halves every paceHalfLife they go
// slower), so that a late round, or DDL put off by ddlBackoff, does not
// let them outrun the ranges into the DEFAULT partition: at least
// partitionsAhead, at most maxPartitionsAhead, as each partition is one
// more for every claim's plan to lock. Of the default million ids that is
// two up to 100,000 rows/s; of 25,000, twelve at 15,000 rows/s.
const (
	aheadFor           = 20 * time.Second
	paceHalfLife       = time.Minute
	maxPartitionsAhead = 32
)

// writerPace is how fast writers add ids, at their fastest lately.
type writerPace struct {
	at   time.Time
	top  int64
	peak float64 // ids a second
}

// observe records top, the highest id written, at time now.
func (w *writerPace) observe(now time.Time, top int64) {
	if !w.at.IsZero() {
		dt := now.Sub(w.at).Seconds()
		rate := 0.0
		if dt > 0 && top > w.top {
			rate = float64(top-w.top) / dt
		}
		w.peak = max(rate, w.peak*math.Exp2(-dt/paceHalfLife.Seconds()))
	}
	w.at, w.top = now, top
}

// ahead returns how many partitions of rows ids to keep ahead.
func (w *writerPace) ahead(rows int64) int {
	n := math.Ceil(w.peak * aheadFor.Seconds() / float64(rows))
	return int(min(max(n, partitionsAhead), maxPartitionsAhead))
}

// ddlGate says when the partitions' DDL may next be tried.
type ddlGate struct {
	after   time.Time
	backoff *retry.Backoff
}

// closed reports whether DDL must wait.
func (g *ddlGate) closed() bool { return time.Now().Before(g.after) }

// failed puts DDL off by the next wait, which it returns.
func (g *ddlGate) failed() time.Duration {
	wait := g.backoff.Next()
	g.after = time.Now().Add(wait)
	return wait
}

// keepPartitions tends the table's partitions until ctx ends; it also
// notices the table's layout changing (a conversion while the relay runs).
func (r *Relay) keepPartitions(ctx context.Context) {
	sealed := map[string]seal{} // partitions below the floor
	gate := &ddlGate{backoff: retry.NewBackoff(ddlBackoff)}
	pace := &writerPace{}
	for retry.Sleep(ctx, partitionEvery) {
		pctx, cancel := context.WithTimeout(ctx, partitionTimeout)
		err := r.tendPartitions(pctx, sealed, gate, pace)
		cancel()
		if err != nil && ctx.Err() == nil {
			r.logger.Warn("tending the outbox's partitions failed; trying again", zap.Error(err))
		}
	}
}

func (r *Relay) tendPartitions(ctx context.Context, sealed map[string]seal, gate *ddlGate, pace *writerPace) error {
	was := r.store.Partitioned()
	info, err := r.store.Info(ctx, r.pool)
	if err != nil {
		return err
	}
	if info.Partitioned != was {
		r.logger.Info("the outbox table's layout changed", zap.Bool("partitioned", info.Partitioned))
		warnAboutTable(r.logger, r.src.Table, info)
	}
	if !info.Partitioned || !slices.Contains(r.coord.Shards(), 0) {
		clear(sealed)
		*pace = writerPace{}
		return nil
	}
	top, err := r.store.Top(ctx, r.pool)
	if err != nil {
		return err
	}
	pace.observe(time.Now(), top)
	if !gate.closed() {
		created, err := r.store.Extend(ctx, r.pool, r.cfg.PartitionRows, pace.ahead(r.cfg.PartitionRows), ddlLockWait)
		switch {
		case err != nil: // the partitions are still checked below
			r.logger.Warn("making outbox partitions ahead failed; rows past them go to the DEFAULT partition meanwhile",
				zap.Error(err), zap.Duration("next_try_in", gate.failed()))
		case created > 0:
			gate.backoff.Reset()
			r.metrics.observePartitions(r.src.Name, created, 0)
		}
	}
	parts, err := r.store.Partitions(ctx, r.pool)
	if err != nil {
		return err
	}
	floor := r.floor.ID()
	present := map[string]bool{}
	for _, p := range parts {
		present[p.Name] = true
	}
	for name := range sealed {
		if !present[name] {
			delete(sealed, name)
		}
	}
	for _, p := range parts {
		// Every id in p lies below end. The DEFAULT partition has no range:
		// its end is one above its highest row. Rows keep coming to it
		// (writers past the ranges, or in a gap between them), but once the
		// floor passed its end, only above it: so it is sealed only while
		// its end stays the same.
		end := p.End
		if p.Default {
			top, err := r.store.DefaultTop(ctx, r.pool, p)
			if err != nil {
				return err
			}
			if top == 0 {
				delete(sealed, p.Name)
				continue
			}
			end = top + 1
		}
		if end > floor {
			delete(sealed, p.Name)
			continue
		}
		s, ok := sealed[p.Name]
		if !ok || s.end != end {
			// Once, as the floor passes it: a row in it the floor passed
			// over (an id drawn long before its commit) is found now.
			id, err := r.store.Waiting(ctx, r.pool, p)
			if err != nil {
				return err
			}
			if id != 0 {
				r.lowerFloor(id, p)
				continue
			}
			sealed[p.Name] = seal{since: time.Now(), end: end}
			continue
		}
		if r.cfg.Retention == 0 || time.Since(s.since) < r.cfg.Retention || gate.closed() || r.kafkaStalled(kafkaStalledFor) ||
			p.Default && !info.EmptiesDefault {
			continue
		}
		waiting, err := r.store.Drop(ctx, r.pool, p, ddlLockWait)
		if err != nil && errors.Is(ctx.Err(), context.Canceled) {
			return err // shutting down, which keepPartitions does not warn of
		}
		if err != nil {
			wait := gate.failed()
			r.logger.Warn("dropping a published partition failed; it stays for now", zap.String("partition", p.Name),
				zap.Error(err), zap.Duration("next_try_in", wait))
			continue
		}
		gate.backoff.Reset()
		delete(sealed, p.Name)
		if waiting != 0 {
			r.lowerFloor(waiting, p)
			continue
		}
		if p.Default { // emptied, or left for rows that came meanwhile: its end says which
			continue
		}
		r.metrics.observePartitions(r.src.Name, 0, 1)
		r.logger.Info("dropped a published outbox partition", zap.String("partition", p.Name),
			zap.Int64("first_id", p.First), zap.Int64("end_id", p.End))
	}
	return nil
}

// seal is when the floor passed a partition's end (see tendPartitions).
type seal struct {
	since time.Time
	end   int64
}

// lowerFloor takes the claims back down to a row found waiting below the
// floor, in partition p, and wakes the idle workers for it.
func (r *Relay) lowerFloor(id int64, p store.Partition) {
	r.logger.Info("a row waits below the floor; claims go back for it", zap.Int64("id", id), zap.String("partition", p.Name))
	r.floor.Lower(id)
	for _, n := range r.nudges {
		select {
		case n <- struct{}{}:
		default:
		}
	}
}

// retentionTimeout bounds one retention delete (a batch of RetentionBatch rows).
const retentionTimeout = 30 * time.Second

// retain deletes published rows past the retention from a table of the
// earlier layout, a small batch at a time so neither locks nor WAL pile
// up, until none are left; then waits. A partitioned table drops whole
// partitions instead (keepPartitions).
func (r *Relay) retain(ctx context.Context) {
	for {
		for ctx.Err() == nil && !r.store.Partitioned() {
			dctx, cancel := context.WithTimeout(ctx, retentionTimeout)
			sw := ops.StartStopwatch()
			n, err := r.store.DeletePublished(dctx, r.pool, r.cfg.Retention, r.cfg.RetentionBatch)
			sw.Lap(r.metrics.step(r.src.Name, "retention"))
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					r.logger.Warn("deleting published rows failed", zap.Error(err))
				}
				break
			}
			r.metrics.observeDeleted(r.src.Name, n)
			if n < int64(r.cfg.RetentionBatch) {
				break
			}
		}
		if !retry.Sleep(ctx, r.cfg.RetentionInterval) {
			return
		}
	}
}

// Stats is what a replica knows of its source, for metrics.
type Stats struct {
	Lanes          int           // lanes this replica leases
	WaitingWorkers int           // workers idle until a notification or the poll
	Pending        int64         // rows waiting to be published (retrying ones included)
	OldestPending  time.Duration // age of the oldest of them
	Parked         int64         // rows parked until someone requeues them
}

// Stats reads the source's counts; the error says the database did not answer.
func (r *Relay) Stats(ctx context.Context) (Stats, error) {
	st := Stats{Lanes: r.coord.Owned(), WaitingWorkers: int(r.waiting.Load())}
	var err error
	if st.Pending, st.OldestPending, err = r.store.Pending(ctx, r.pool, r.floor.ID()); err != nil {
		return st, err
	}
	st.Parked, err = r.store.ParkedCount(ctx, r.pool)
	return st, err
}

// Lanes is the number of lanes this replica leases.
func (r *Relay) Lanes() int { return r.coord.Owned() }
