// Package store writes check results into the stats table and, in the
// same transaction, into their rollups and the sites' states.
package store

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/ops"
	"github.com/sitewatch/sitewatch/services/sink/internal/incident"
	"github.com/sitewatch/sitewatch/services/sink/internal/pgerr"
	"github.com/sitewatch/sitewatch/services/sink/internal/rollup"
)

//go:embed insert_stats.sql
var insertStatsTemplate string

// Record is a check plus where Kafka had it.
type Record struct {
	checkevent.Check
	Topic     string
	Partition int32
	Offset    int64
}

// row is a Record as the stats table holds it: absent values are nil
// (NULL), never zero.
type row struct {
	*Record
	eventID   pgtype.UUID // the event id parsed, when it is a UUID (checkevent.Validate makes sure)
	status    *int32
	regex     *string
	class     *string
	errText   *string
	regexes   []byte // jsonb
	finalURL  *string
	remoteIP  *string
	region    *string
	kind      *string
	tlsVer    *string
	tlsCipher *string
	dnsRCode  *string
	answers   []byte // jsonb; nil without a DNS answer section
	icmpSent  *int32 // icmp checks only
	icmpRecv  *int32
	conds     []byte // jsonb; nil without conditions
	degraded  *string
	v2        bool // version 1 had no phases, size, redirects: NULL, not 0
	redirects int32
}

func toRow(r *Record) (row, error) {
	w := row{Record: r, regex: nonEmpty(r.Regex), class: nonEmpty(r.ErrorClass), errText: nonEmpty(r.Error),
		finalURL: nonEmpty(r.FinalURL), remoteIP: nonEmpty(r.RemoteIP), region: nonEmpty(r.Region),
		kind: nonEmpty(r.Kind), degraded: nonEmpty(r.Degraded), tlsVer: nonEmpty(r.TLSVersion), tlsCipher: nonEmpty(r.TLSCipher), dnsRCode: nonEmpty(r.DNSRCode),
		v2: r.SchemaVersion >= 2, redirects: int32(r.Redirects)}
	if id, err := uuid.Parse(r.EventID); err == nil {
		w.eventID = pgtype.UUID{Bytes: id, Valid: true}
	}
	if r.StatusCode != 0 {
		code := int32(r.StatusCode)
		w.status = &code
	}
	if r.Kind == checkevent.KindICMP || r.ICMPSent > 0 {
		sent, recv := int32(r.ICMPSent), int32(r.ICMPReceived)
		w.icmpSent, w.icmpRecv = &sent, &recv
	}
	if r.DNSAnswers != nil || r.DNSRCode != "" {
		b, err := json.Marshal(r.DNSAnswers)
		if err != nil {
			return row{}, fmt.Errorf("encoding DNS answers of event %s: %w", r.EventID, err)
		}
		if r.DNSAnswers == nil {
			b = []byte("[]") // a response with no answers: none, not unknown
		}
		w.answers = b
	}
	if len(r.Conditions) > 0 {
		b, err := json.Marshal(r.Conditions)
		if err != nil {
			return row{}, fmt.Errorf("encoding condition results of event %s: %w", r.EventID, err)
		}
		w.conds = b
	}
	if len(r.Regexes) > 0 {
		b, err := json.Marshal(r.Regexes)
		if err != nil {
			return row{}, fmt.Errorf("encoding regex results of event %s: %w", r.EventID, err)
		}
		w.regexes = b
	}
	return w, nil
}

// ifV2 is p for a version 2 record, nil (NULL) for version 1.
func ifV2[T any](w *row, p *T) *T {
	if !w.v2 {
		return nil
	}
	return p
}

// column is one stats column: its name, the SQL type of its array
// parameter, how a batch fills that array, and its value in one row (for
// COPY).
type column struct {
	name, sqlType string
	values        func(rows []row) any
	value         func(w *row) any
}

// col makes a column whose array holds get(row) for each row. The array is
// a typed slice ([]int64, []*string...), which pgx encodes without
// reflection per value.
func col[T any](name, sqlType string, get func(w *row) T) column {
	return column{name: name, sqlType: sqlType, values: func(rows []row) any {
		out := make([]T, len(rows))
		for i := range rows {
			out[i] = get(&rows[i])
		}
		return out
	}, value: func(w *row) any { return get(w) }}
}

// statsColumns is the one place that says what goes in which column; the
// statement's column list and its arguments are both derived from it.
var statsColumns = []column{
	eventIDColumn(),
	col("site_id", "bigint", func(w *row) int64 { return w.SiteID }),
	col("url", "text", func(w *row) string { return w.URL }),
	col("checked_at", "timestamptz", func(w *row) time.Time { return w.CheckedAt }),
	col("status_code", "int", func(w *row) *int32 { return w.status }),
	col("duration_ms", "float8", func(w *row) float64 { return w.DurationMS }),
	col("regex", "text", func(w *row) *string { return w.regex }),
	col("regex_matched", "bool", func(w *row) *bool { return w.RegexMatched }),
	col("error_class", "text", func(w *row) *string { return w.class }),
	col("error", "text", func(w *row) *string { return w.errText }),
	col("topic_name", "text", func(w *row) string { return w.Topic }),
	col("kafka_partition", "int", func(w *row) int32 { return w.Partition }),
	col("kafka_offset", "bigint", func(w *row) int64 { return w.Offset }),
	col("schema_version", "smallint", func(w *row) int16 { return int16(w.SchemaVersion) }),
	col("regexes", "jsonb", func(w *row) []byte { return w.regexes }),
	col("dns_ms", "float8", func(w *row) *float64 { return ifV2(w, &w.DNSMS) }),
	col("connect_ms", "float8", func(w *row) *float64 { return ifV2(w, &w.ConnectMS) }),
	col("tls_ms", "float8", func(w *row) *float64 { return ifV2(w, &w.TLSMS) }),
	col("ttfb_ms", "float8", func(w *row) *float64 { return ifV2(w, &w.TTFBMS) }),
	col("transfer_ms", "float8", func(w *row) *float64 { return ifV2(w, &w.TransferMS) }),
	col("body_bytes", "bigint", func(w *row) *int64 { return ifV2(w, &w.BodyBytes) }),
	col("truncated", "bool", func(w *row) *bool { return ifV2(w, &w.Truncated) }),
	col("redirects", "int", func(w *row) *int32 { return ifV2(w, &w.redirects) }),
	col("final_url", "text", func(w *row) *string { return w.finalURL }),
	col("tls_expiry", "timestamptz", func(w *row) *time.Time { return w.TLSExpiry }),
	col("tls_chain_expiry", "timestamptz", func(w *row) *time.Time { return w.TLSChainExpiry }),
	col("remote_ip", "text", func(w *row) *string { return w.remoteIP }),
	col("region", "text", func(w *row) *string { return w.region }),
	col("kind", "text", func(w *row) *string { return w.kind }),
	col("tls_version", "text", func(w *row) *string { return w.tlsVer }),
	col("tls_cipher", "text", func(w *row) *string { return w.tlsCipher }),
	col("ocsp_stapled", "bool", func(w *row) *bool { return w.OCSPStapled }),
	col("dns_rcode", "text", func(w *row) *string { return w.dnsRCode }),
	col("dns_answers", "jsonb", func(w *row) []byte { return w.answers }),
	col("icmp_sent", "int", func(w *row) *int32 { return w.icmpSent }),
	col("icmp_received", "int", func(w *row) *int32 { return w.icmpRecv }),
	col("rtt_min_ms", "float8", func(w *row) *float64 { return w.RTTMinMS }),
	col("rtt_avg_ms", "float8", func(w *row) *float64 { return w.RTTAvgMS }),
	col("rtt_max_ms", "float8", func(w *row) *float64 { return w.RTTMaxMS }),
	col("conditions", "jsonb", func(w *row) []byte { return w.conds }),
	col("degraded", "text", func(w *row) *string { return w.degraded }),
}

// eventIDColumn is event_id, copied as the 16 bytes of a UUID: pgx
// encodes a string for a uuid column only after failing to (an error built
// per row); the copy's share of all CPU while draining went from 8.6 to
// 4.7 % (perf). An id that is no UUID is copied as text, for the database
// to refuse. The INSERT fallback sends the ids as text.
func eventIDColumn() column {
	c := col("event_id", "uuid", func(w *row) string { return w.EventID })
	c.value = func(w *row) any {
		if w.eventID.Valid {
			return w.eventID
		}
		return w.EventID
	}
	return c
}

var (
	insertStatsSQL = insertSQL(insertStatsTemplate, statsColumns)
	statsNames     = func() []string {
		names := make([]string, len(statsColumns))
		for i, c := range statsColumns {
			names[i] = c.name
		}
		return names
	}()
)

// insertSQL fills the template's column list and array parameters.
func insertSQL(template string, cols []column) string {
	names := make([]string, len(cols))
	arrays := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
		arrays[i] = fmt.Sprintf("$%d::%s[]", i+1, c.sqlType)
	}
	return strings.NewReplacer("{{columns}}", strings.Join(names, ", "), "{{arrays}}", strings.Join(arrays, ", ")).Replace(template)
}

// Store writes to the stats table.
type Store struct {
	pool          *pgxpool.Pool
	incidentTopic string // where incident events go, through the outbox
	recent        *rollup.Recent
	steps         *prometheus.CounterVec
	redelivered   prometheus.Counter
}

// Steps are the parts of writing a batch that Store times, in order: the
// raw rows, their rollups, the sites' states and incidents, and the commit.
var Steps = []string{"stats", "rollups", "state", "commit"}

// New returns a Store using pool that announces incidents on incidentTopic.
// The time each step of a write takes is counted in
// sitewatch_sink_write_seconds_total{step}, and the batches written again
// because they held an event already stored in
// sitewatch_sink_redelivered_batches_total; the 1-minute rollup buckets
// inserted as new rows and the batches that met one existing after all
// (rollup.Recent) in sitewatch_sink_rollup_new_buckets_total and
// sitewatch_sink_rollup_bucket_fallbacks_total; all registered with reg.
func New(pool *pgxpool.Pool, incidentTopic string, reg prometheus.Registerer) *Store {
	steps := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitewatch_sink_write_seconds_total",
		Help: "Time spent writing batches, by step: stats (raw rows), rollups, state (sites' states and incidents), commit."},
		[]string{"step"})
	for _, step := range Steps {
		steps.WithLabelValues(step) // present at 0 before the first batch
	}
	redelivered := prometheus.NewCounter(prometheus.CounterOpts{Name: "sitewatch_sink_redelivered_batches_total",
		Help: "Batches holding an event already stored (delivered again): copying them in failed on its key, and they were written again skipping it."})
	recent := rollup.NewRecent()
	reg.MustRegister(steps, redelivered,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sitewatch_sink_rollup_new_buckets_total",
			Help: "1-minute rollup buckets inserted as new rows, which no batch of this sink had written (the others are added to)."},
			func() float64 { return float64(recent.Inserted()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sitewatch_sink_rollup_bucket_fallbacks_total",
			Help: "Batches whose 1-minute rollup buckets thought new included one that existed (written before a restart or by another sink before a rebalance): they were added to instead."},
			func() float64 { return float64(recent.Fallbacks()) }))
	return &Store{pool: pool, incidentTopic: incidentTopic, recent: recent, steps: steps, redelivered: redelivered}
}

// Insert writes recs in one transaction and returns how many rows were
// new; records whose event id is already stored are skipped. The checks
// stored for the first time move their sites' states, and the incidents
// that opens or resolves are written, with their outbox rows, in the same
// transaction (see package incident).
//
// The rows are copied in (COPY) on the assumption that every one is new,
// which is the case unless a batch is delivered again. Should an event
// already be stored (or be twice in recs), the copy fails on the key, and
// the transaction is written again with INSERT ... ON CONFLICT DO NOTHING,
// which skips it. Copying takes half the insert's time per row
// (BenchmarkSinkPreloaded: raw rows 14.0 → 6.7 µs a row).
func (s *Store) Insert(ctx context.Context, recs []Record) (n int64, err error) {
	if len(recs) == 0 {
		return 0, nil
	}
	rows := make([]row, len(recs))
	for i := range recs {
		if rows[i], err = toRow(&recs[i]); err != nil {
			return 0, err
		}
	}
	n, err = s.write(ctx, recs, rows, true)
	if pgerr.IsUniqueViolation(err) {
		s.redelivered.Inc()
		n, err = s.write(ctx, recs, rows, false)
	}
	return n, err
}

// write is Insert's transaction; copyIn says whether the raw rows are
// copied in (and must all be new) or inserted with ON CONFLICT DO NOTHING.
func (s *Store) write(ctx context.Context, recs []Record, rows []row, copyIn bool) (n int64, err error) {
	sw := ops.StartStopwatch()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("starting the transaction of %d stats rows: %w", len(recs), err)
	}
	defer func() { // a no-op once committed
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()
	err = func() error {
		fresh, err := insertStats(ctx, tx, rows, copyIn)
		if err != nil {
			return err
		}
		n = int64(len(recs))
		if fresh != nil {
			n = int64(len(fresh))
		}
		checks := make([]incident.Check, 0, n)
		rolled := make([]rollup.Check, 0, n)
		for _, r := range recs {
			if fresh == nil || fresh[r.EventID] {
				delete(fresh, r.EventID) // a batch may carry an event twice: count it once
				checks = append(checks, incident.Check{SiteID: r.SiteID, Region: r.Region, CheckedAt: r.CheckedAt,
					Failed: r.ErrorClass != "", ErrorClass: r.ErrorClass, Error: r.Error, TLSExpiry: r.TLSExpiry, Degraded: r.Degraded != ""})
				rolled = append(rolled, rollup.Check{SiteID: r.SiteID, Region: r.Region, CheckedAt: r.CheckedAt,
					Failed: r.ErrorClass != "", DurationMS: r.DurationMS, Phases: r.SchemaVersion >= 2,
					DNSMS: r.DNSMS, ConnectMS: r.ConnectMS, TLSMS: r.TLSMS, TTFBMS: r.TTFBMS, TransferMS: r.TransferMS})
			}
		}
		sw.Lap(s.steps.WithLabelValues("stats"))
		// Only the rows stored for the first time count: re-delivery
		// cannot add to a bucket twice.
		if err := rollup.Apply(ctx, tx, rolled, s.recent); err != nil {
			return err
		}
		sw.Lap(s.steps.WithLabelValues("rollups"))
		_, err = incident.Apply(ctx, tx, s.incidentTopic, checks)
		sw.Lap(s.steps.WithLabelValues("state"))
		return err
	}()
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("committing %d stats rows: %w", len(recs), err)
	}
	sw.Lap(s.steps.WithLabelValues("commit"))
	return n, nil
}

// insertStats writes the raw rows and returns the event ids stored for the
// first time; nil when every row was, each once (a copy succeeded: it
// fails on an event already stored or twice in rows). The copy path does
// not build the set: hashing 10,000 ids a batch was 1.7 % of all CPU
// while draining (perf).
func insertStats(ctx context.Context, tx pgx.Tx, rows []row, copyIn bool) (map[string]bool, error) {
	if copyIn {
		values := make([]any, len(statsColumns)) // CopyFrom encodes a row before asking for the next
		next := 0
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"stats"}, statsNames, pgx.CopyFromFunc(func() ([]any, error) {
			if next == len(rows) {
				return nil, nil
			}
			w := &rows[next]
			next++
			for i, c := range statsColumns {
				values[i] = c.value(w)
			}
			return values, nil
		})); err != nil {
			return nil, fmt.Errorf("copying %d stats rows: %w", len(rows), err)
		}
		return nil, nil
	}
	fresh := make(map[string]bool, len(rows))
	args := make([]any, len(statsColumns))
	for i, c := range statsColumns {
		args[i] = c.values(rows)
	}
	res, err := tx.Query(ctx, insertStatsSQL, args...)
	if err != nil {
		return nil, fmt.Errorf("inserting %d stats rows: %w", len(rows), err)
	}
	inserted, err := pgx.CollectRows(res, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("inserting %d stats rows: %w", len(rows), err)
	}
	for _, id := range inserted {
		fresh[id] = true
	}
	return fresh, nil
}

// IsPermanent reports whether err is the database refusing the data itself
// (bad encoding, value out of range, constraint), which no retry can fix,
// as opposed to the database being unreachable or busy.
func IsPermanent(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	class := pgErr.Code[:2]
	return class == "22" || class == "23" // data exception, integrity constraint violation
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
