// Package store is the relay's SQL against one outbox table. It knows the
// outbox columns and nothing about what the messages mean.
package store

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sitewatch/sitewatch/outbox"
)

// The queries, one file each; {{table}} stands for the quoted table name.
var (
	//go:embed check_columns.sql
	checkColumnsSQL string
	//go:embed claim.sql
	claimSQL string
	//go:embed delete_published.sql
	deletePublishedSQL string
	//go:embed floor.sql
	floorSQL string
	//go:embed mark_failed.sql
	markFailedSQL string
	//go:embed mark_published.sql
	markPublishedSQL string
	//go:embed park.sql
	parkSQL string
	//go:embed parked_count.sql
	parkedCountSQL string
	//go:embed parked_list.sql
	parkedListSQL string
	//go:embed pending.sql
	pendingSQL string
	//go:embed requeue.sql
	requeueSQL string
	//go:embed sizes.sql
	sizesSQL string // $1 names the table: no {{table}}
	//go:embed table_info.sql
	tableInfoSQL string

	// The partitioned layout's own statements (outbox.sql).
	//go:embed floor_partitioned.sql
	floorPartitionedSQL string
	//go:embed requeue_partitioned.sql
	requeuePartitionedSQL string
	//go:embed partitions.sql
	partitionsSQL string
	//go:embed extend.sql
	extendSQL string
	//go:embed drop_partition.sql
	dropPartitionSQL string
	//go:embed lock_timeout.sql
	lockTimeoutSQL string
	//go:embed waiting_between.sql
	waitingBetweenSQL string
	//go:embed default_top.sql
	defaultTopSQL string
	//go:embed default_waiting.sql
	defaultWaitingSQL string
	//go:embed top.sql
	topSQL string

	//go:embed lock_lanes.sql
	lockLanesSQL string
)

// Row is one outbox row claimed for publishing.
type Row struct {
	ID        int64
	EventID   string
	Topic     string
	Key       []byte
	Payload   []byte
	Headers   map[string]string
	CreatedAt time.Time
	Attempts  int
	// Problem says why the row can never be produced (a NULL where a
	// value is needed, a message over the size limit); such a row is
	// parked with it.
	Problem string
}

// ParkedRow is a row that will not be published until it is requeued.
type ParkedRow struct {
	ID        int64
	EventID   string
	Topic     string
	Key       string
	Attempts  int
	ParkedAt  time.Time
	LastError string
}

// Retry says how rows Kafka refused are retried.
type Retry struct {
	Backoff     time.Duration // first wait, doubled per attempt
	MaxBackoff  time.Duration
	MaxAttempts int // then the row is parked
}

// DB is what the store's queries run on: a pool, a connection or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// queries are the statements of one Store, with its table filled in.
type queries struct {
	checkColumns    string
	claim           string
	deletePublished string
	floor           string
	markFailed      string
	markPublished   string
	park            string
	parkedCount     string
	parkedList      string
	pending         string
	requeue         string
	tableInfo       string

	floorPartitioned   string
	requeuePartitioned string
	waitingBetween     string
	defaultTop         string
	defaultWaiting     string
	top                string
}

// Store runs the relay's queries against one table, in either layout:
// partitioned (outbox.sql) or the earlier single table, which keeps
// working as it did (a DELETE for retention, vacuum for the rest).
type Store struct {
	table       string
	q           queries
	partitioned atomic.Bool
	// The calls of outbox.sql's functions, in the table's schema (where
	// outbox.sql makes them, whatever a connection's search_path): set by
	// Info.
	calls atomic.Pointer[calls]
	// The first key of the lanes' batch locks (lock_lanes.sql): the
	// table's schema and name, hashed, set by Info. Not its oid, which a
	// conversion changes: relays started before and after one lock alike.
	batchKey atomic.Int32
}

// calls are the statements that call outbox.sql's partition functions.
type calls struct {
	partitions, extend, drop string
}

// New returns a Store for table ("outbox" or "schema.outbox").
func New(table string) (*Store, error) {
	ident, err := outbox.QuoteTable(table)
	if err != nil {
		return nil, err
	}
	fill := func(sql string) string { return strings.ReplaceAll(sql, "{{table}}", ident) }
	s := &Store{table: ident, q: queries{
		checkColumns:    fill(checkColumnsSQL),
		claim:           fill(claimSQL),
		deletePublished: fill(deletePublishedSQL),
		floor:           fill(floorSQL),
		markFailed:      fill(markFailedSQL),
		markPublished:   fill(markPublishedSQL),
		park:            fill(parkSQL),
		parkedCount:     fill(parkedCountSQL),
		parkedList:      fill(parkedListSQL),
		pending:         fill(pendingSQL),
		requeue:         fill(requeueSQL),
		tableInfo:       fill(tableInfoSQL),

		floorPartitioned:   fill(floorPartitionedSQL),
		requeuePartitioned: fill(requeuePartitionedSQL),
		waitingBetween:     fill(waitingBetweenSQL),
		defaultTop:         fill(defaultTopSQL),
		defaultWaiting:     fill(defaultWaitingSQL),
		top:                fill(topSQL),
	}}
	return s, nil
}

// TableInfo is how the relay addresses a table in PostgreSQL.
type TableInfo struct {
	OID     uint32
	Schema  string
	Name    string
	Channel string // LISTEN/NOTIFY channel of the outbox_notify trigger
	// Partitioned is the layout of outbox.sql; false is the earlier single
	// table (CALL outbox_partition converts it).
	Partitioned bool
	// EmptiesDefault says outbox_drop may be given the DEFAULT partition:
	// it looks it through again under its lock (outbox.sql since sitewatch's
	// migration 00032).
	EmptiesDefault bool
	// Fillfactor is the table's, or its newest range partition's, which
	// the next partitions copy: above 50 most publish flips of a batch
	// leave their page (see outbox.sql).
	Fillfactor int
}

// ErrNoPartitionFunctions says a partitioned table lacks the functions the
// relay keeps its partitions with.
var ErrNoPartitionFunctions = errors.New("outbox_extend, outbox_drop or outbox_partitions is missing: apply outbox.sql (the outbox package's DDL) again")

// Info resolves the table and its layout, which the store's statements
// follow from then on; it fails if the table does not exist, lacks a
// column, or is partitioned without the functions of outbox.sql.
func (s *Store) Info(ctx context.Context, db DB) (TableInfo, error) {
	var oid int64
	var ti TableInfo
	var functions bool
	if err := db.QueryRow(ctx, s.q.tableInfo, s.table).Scan(&oid, &ti.Schema, &ti.Name, &ti.Channel, &ti.Partitioned, &functions, &ti.EmptiesDefault, &ti.Fillfactor); err != nil {
		return TableInfo{}, fmt.Errorf("looking up outbox table %s: %w", s.table, err)
	}
	if ti.Partitioned && !functions {
		return TableInfo{}, fmt.Errorf("outbox table %s is partitioned but %w", s.table, ErrNoPartitionFunctions)
	}
	schema := pgx.Identifier{ti.Schema}.Sanitize()
	inSchema := func(sql string) string { return strings.ReplaceAll(sql, "{{schema}}", schema) }
	s.calls.Store(&calls{partitions: inSchema(partitionsSQL), extend: inSchema(extendSQL), drop: inSchema(dropPartitionSQL)})
	s.partitioned.Store(ti.Partitioned)
	rows, err := db.Query(ctx, s.q.checkColumns)
	if err == nil {
		rows.Close()
		err = rows.Err()
	}
	if err != nil {
		return TableInfo{}, fmt.Errorf("outbox table %s lacks columns the relay needs (apply the DDL of the outbox package or sitewatch's migrations): %w", s.table, err)
	}
	ti.OID = uint32(oid)
	s.batchKey.Store(int32(crc32.ChecksumIEEE([]byte(ti.Schema + "." + ti.Name))))
	return ti, nil
}

// Claim locks lanes until tx ends (lock_lanes.sql), then returns up to
// limit publishable rows of them with ids from from on (floor, the Floor's
// id, or above), oldest first. It also returns the lowest id of a row of
// lanes waiting out a retry backoff, or 0. Payloads larger than maxBytes
// (with the key) are not loaded.
func (s *Store) Claim(ctx context.Context, tx DB, lanes []int16, limit int, maxBytes, floor, from int64) ([]Row, int64, error) {
	locks := make([]int32, len(lanes))
	for i, lane := range lanes {
		locks[i] = int32(lane)
	}
	slices.Sort(locks)
	if _, err := tx.Exec(ctx, lockLanesSQL, s.batchKey.Load(), locks); err != nil {
		return nil, 0, fmt.Errorf("locking the lanes of an outbox batch: %w", err)
	}
	// A statement of its own, after the locks: its snapshot then sees what
	// a batch that held them committed.
	rows, err := tx.Query(ctx, s.q.claim, limit, lanes, maxBytes, max(floor, from), floor)
	if err != nil {
		return nil, 0, fmt.Errorf("claiming outbox batch: %w", err)
	}
	defer rows.Close()
	var out []Row
	var retrying *int64
	for rows.Next() {
		var r Row
		var headers []byte
		var size *int64
		if err := rows.Scan(&r.ID, &r.EventID, &r.Topic, &r.Key, &r.Payload, &size, &headers, &r.CreatedAt, &r.Attempts, &retrying); err != nil {
			return nil, 0, fmt.Errorf("reading outbox row: %w", err)
		}
		switch {
		case r.EventID == "":
			r.Problem = "event_id is NULL"
		case r.Topic == "":
			r.Problem = "topic_name is NULL or empty"
		case size == nil:
			r.Problem = "payload is NULL"
		case *size > maxBytes:
			r.Problem = fmt.Sprintf("message of %d bytes (key and payload) is larger than the %d bytes Kafka accepts", *size, maxBytes)
		}
		r.Headers = DecodeHeaders(headers)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("claiming outbox batch: %w", err)
	}
	if retrying == nil {
		return out, 0, nil
	}
	return out, *retrying, nil
}

// InvalidHeaders is the one header of a message whose row's headers are not
// a JSON object of strings; its value says why.
const InvalidHeaders = "outbox_invalid_headers"

// DecodeHeaders returns the Kafka headers of a row's headers column (jsonb
// text). Headers that are not a JSON object of strings cannot be sent as
// written: the message then carries InvalidHeaders saying so, instead of
// stalling its key.
func DecodeHeaders(raw []byte) map[string]string {
	if h, ok := decodePlainHeaders(raw); ok {
		return h
	}
	var h map[string]string
	if err := json.Unmarshal(raw, &h); err != nil {
		return map[string]string{InvalidHeaders: err.Error()}
	}
	return h
}

// decodePlainHeaders reads the usual headers column, a JSON object of
// strings without escapes (as jsonb prints it: {"k": "v"}), several times
// as fast as encoding/json (the relay's BenchmarkDecodeHeaders), with
// which decoding every row's headers took a tenth of the relay process's
// CPU time. ok is false for anything else, which encoding/json then reads:
// escapes, other values, invalid UTF-8 (which it replaces), malformed JSON;
// FuzzDecodeHeaders requires the two to agree.
func decodePlainHeaders(raw []byte) (h map[string]string, ok bool) {
	if !utf8.Valid(raw) {
		return nil, false
	}
	i := skipJSONSpace(raw, 0)
	if i == len(raw) || raw[i] != '{' {
		return nil, false
	}
	h = map[string]string{}
	if i = skipJSONSpace(raw, i+1); i < len(raw) && raw[i] == '}' {
		return h, skipJSONSpace(raw, i+1) == len(raw)
	}
	for {
		k, next, ok := plainJSONString(raw, i)
		if !ok {
			return nil, false
		}
		if i = skipJSONSpace(raw, next); i == len(raw) || raw[i] != ':' {
			return nil, false
		}
		v, next, ok := plainJSONString(raw, skipJSONSpace(raw, i+1))
		if !ok {
			return nil, false
		}
		h[k] = v
		if i = skipJSONSpace(raw, next); i == len(raw) {
			return nil, false
		}
		switch raw[i] {
		case ',':
			i = skipJSONSpace(raw, i+1)
		case '}':
			return h, skipJSONSpace(raw, i+1) == len(raw)
		default:
			return nil, false
		}
	}
}

// plainJSONString reads the JSON string at raw[i] if it has no escape and
// no control character; next is the index after it.
func plainJSONString(raw []byte, i int) (s string, next int, ok bool) {
	if i == len(raw) || raw[i] != '"' {
		return "", i, false
	}
	for j := i + 1; j < len(raw); j++ {
		switch c := raw[j]; {
		case c == '"':
			return string(raw[i+1 : j]), j + 1, true
		case c == '\\' || c < 0x20:
			return "", j, false
		}
	}
	return "", len(raw), false
}

// skipJSONSpace is the index of the first byte from i on that is not JSON
// whitespace.
func skipJSONSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	return i
}

// MarkPublished flips the rows Kafka acknowledged.
func (s *Store) MarkPublished(ctx context.Context, tx DB, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, s.q.markPublished, ids, slices.Min(ids), slices.Max(ids)); err != nil {
		return fmt.Errorf("marking %d outbox rows published: %w", len(ids), err)
	}
	return nil
}

// MarkFailed records the error of each row Kafka refused and schedules its
// retry; it returns the ids of the rows that reached the attempt limit and
// are now parked.
func (s *Store) MarkFailed(ctx context.Context, tx DB, ids []int64, errs []string, retry Retry) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, s.q.markFailed, ids, errs,
		retry.Backoff.Seconds(), retry.MaxBackoff.Seconds(), retry.MaxAttempts)
	if err != nil {
		return nil, fmt.Errorf("recording %d failed outbox rows: %w", len(ids), err)
	}
	var parked []int64
	for rows.Next() {
		var id int64
		var isParked bool
		if err := rows.Scan(&id, &isParked); err != nil {
			rows.Close()
			return nil, fmt.Errorf("recording failed outbox rows: %w", err)
		}
		if isParked {
			parked = append(parked, id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("recording %d failed outbox rows: %w", len(ids), err)
	}
	return parked, nil
}

// Park parks rows at once with reason.
func (s *Store) Park(ctx context.Context, tx DB, ids []int64, reason string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, s.q.park, ids, reason); err != nil {
		return fmt.Errorf("parking %d outbox rows: %w", len(ids), err)
	}
	return nil
}

// Pending returns the number of rows waiting to be published from floor
// on and the age of the oldest.
func (s *Store) Pending(ctx context.Context, db DB, floor int64) (int64, time.Duration, error) {
	var n int64
	var age float64
	if err := db.QueryRow(ctx, s.q.pending, floor).Scan(&n, &age); err != nil {
		return 0, 0, fmt.Errorf("counting pending outbox rows: %w", err)
	}
	return n, time.Duration(age * float64(time.Second)), nil
}

// ParkedCount returns the number of parked rows.
func (s *Store) ParkedCount(ctx context.Context, db DB) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, s.q.parkedCount).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting parked outbox rows: %w", err)
	}
	return n, nil
}

// Size is what a table, or a partition of it, holds: the rows the planner
// estimates (-1 before its first vacuum or analyze) and its bytes on disk,
// indexes and TOAST included.
type Size struct {
	Rows  int64
	Bytes int64
}

// Sizes returns the Size of each partition of the table by its name (as
// Partitions names them), or of the table itself if it is not partitioned.
func (s *Store) Sizes(ctx context.Context, db DB) (map[string]Size, error) {
	rows, err := db.Query(ctx, sizesSQL, s.table)
	if err != nil {
		return nil, fmt.Errorf("reading the outbox's size: %w", err)
	}
	defer rows.Close()
	out := map[string]Size{}
	for rows.Next() {
		var name string
		var size Size
		if err := rows.Scan(&name, &size.Rows, &size.Bytes); err != nil {
			return nil, fmt.Errorf("reading the outbox's size: %w", err)
		}
		out[name] = size
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the outbox's size: %w", err)
	}
	return out, nil
}

// Parked lists up to limit parked rows, oldest first.
func (s *Store) Parked(ctx context.Context, db DB, limit int) ([]ParkedRow, error) {
	rows, err := db.Query(ctx, s.q.parkedList, limit)
	if err != nil {
		return nil, fmt.Errorf("listing parked outbox rows: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ParkedRow])
	if err != nil {
		return nil, fmt.Errorf("listing parked outbox rows: %w", err)
	}
	return out, nil
}

// Requeue gives parked rows (the ids given, or all if all) a fresh set of
// attempts and returns how many it requeued.
// In a partitioned table they are written again, with new ids.
func (s *Store) Requeue(ctx context.Context, db DB, ids []int64, all bool) (int64, error) {
	q := s.q.requeue
	if s.partitioned.Load() {
		q = s.q.requeuePartitioned
	}
	tag, err := db.Exec(ctx, q, ids, all)
	if err != nil {
		return 0, fmt.Errorf("requeueing parked outbox rows: %w", err)
	}
	return tag.RowsAffected(), nil
}

// DeletePublished deletes up to limit rows published more than retention
// ago and returns how many it deleted.
func (s *Store) DeletePublished(ctx context.Context, db DB, retention time.Duration, limit int) (int64, error) {
	tag, err := db.Exec(ctx, s.q.deletePublished, retention.Seconds(), limit)
	if err != nil {
		return 0, fmt.Errorf("deleting published outbox rows: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Partitioned reports the layout Info last found. Partitions, Extend and
// Drop need Info called first.
func (s *Store) Partitioned() bool { return s.partitioned.Load() }

// Partition is one partition of a partitioned outbox: ids from First up to
// End (excluded); the DEFAULT partition has no End.
type Partition struct {
	Name    string
	First   int64
	End     int64
	Default bool
	// outside is the SQL condition on id met by the DEFAULT partition's
	// rows only (see outsideRanges).
	outside string
}

// Partitions lists the table's partitions in id order, the DEFAULT one last.
func (s *Store) Partitions(ctx context.Context, db DB) ([]Partition, error) {
	rows, err := db.Query(ctx, s.calls.Load().partitions, s.table)
	if err != nil {
		return nil, fmt.Errorf("listing the outbox's partitions: %w", err)
	}
	defer rows.Close()
	var out []Partition
	for rows.Next() {
		var p Partition
		var end *int64
		if err := rows.Scan(&p.Name, &p.First, &end); err != nil {
			return nil, fmt.Errorf("listing the outbox's partitions: %w", err)
		}
		if end == nil {
			p.Default, p.End = true, math.MaxInt64
		} else {
			p.End = *end
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing the outbox's partitions: %w", err)
	}
	for i := range out {
		if out[i].Default {
			out[i].outside = outsideRanges(out)
		}
	}
	return out, nil
}

// outsideRanges is the SQL condition on id that the rows of the DEFAULT
// partition among parts meet, and no other: below the first range, between
// two ranges (the gaps outbox_extend leaves), or past the last.
func outsideRanges(parts []Partition) string {
	var ranges []Partition
	for _, p := range parts {
		if !p.Default {
			ranges = append(ranges, p)
		}
	}
	slices.SortFunc(ranges, func(a, b Partition) int { return cmp.Compare(a.First, b.First) })
	var conds []string
	from := int64(math.MinInt64)
	for _, p := range ranges {
		switch {
		case p.First <= from:
		case from == math.MinInt64:
			conds = append(conds, "id < "+strconv.FormatInt(p.First, 10))
		default:
			conds = append(conds, "id >= "+strconv.FormatInt(from, 10)+" AND id < "+strconv.FormatInt(p.First, 10))
		}
		from = max(from, p.End)
	}
	if from == math.MinInt64 {
		return "true"
	}
	return strings.Join(append(conds, "id >= "+strconv.FormatInt(from, 10)), " OR ")
}

// Extend creates partitions of size ids until ahead of them lie beyond
// the highest id written, and returns how many it created.
func (s *Store) Extend(ctx context.Context, pool Beginner, size int64, ahead int, lockWait time.Duration) (int, error) {
	var n int
	err := withLockTimeout(ctx, pool, lockWait, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, s.calls.Load().extend, s.table, size, ahead).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("creating outbox partitions ahead: %w", err)
	}
	return n, nil
}

// Waiting returns the lowest id of a row waiting to be published in p, or
// 0 if none is.
func (s *Store) Waiting(ctx context.Context, db DB, p Partition) (int64, error) {
	sql, args := s.q.waitingBetween, []any{p.First, p.End}
	if p.Default {
		sql, args = strings.ReplaceAll(s.q.defaultWaiting, "{{outside}}", p.outside), nil
	}
	var id *int64
	if err := db.QueryRow(ctx, sql, args...).Scan(&id); err != nil {
		return 0, fmt.Errorf("looking for waiting rows in outbox partition %s: %w", p.Name, err)
	}
	if id == nil {
		return 0, nil
	}
	return *id, nil
}

// DefaultTop returns the highest id in DEFAULT partition p (from
// Partitions), or 0 if p is empty.
func (s *Store) DefaultTop(ctx context.Context, db DB, p Partition) (int64, error) {
	var id *int64
	if err := db.QueryRow(ctx, strings.ReplaceAll(s.q.defaultTop, "{{outside}}", p.outside)).Scan(&id); err != nil {
		return 0, fmt.Errorf("reading the highest id of outbox partition %s: %w", p.Name, err)
	}
	if id == nil {
		return 0, nil
	}
	return *id, nil
}

// Top returns the highest id in the table, or 0 if it is empty.
func (s *Store) Top(ctx context.Context, db DB) (int64, error) {
	var id int64
	if err := db.QueryRow(ctx, s.q.top).Scan(&id); err != nil {
		return 0, fmt.Errorf("reading the outbox's highest id: %w", err)
	}
	return id, nil
}

// Drop drops partition p (empties it, if it is the DEFAULT partition),
// carrying its parked rows over into the table, unless a row in it waits:
// then it returns that row's id and leaves p alone. Each lock is waited
// for at most lockWait; an error then says the partition stays for now.
func (s *Store) Drop(ctx context.Context, pool Beginner, p Partition, lockWait time.Duration) (waiting int64, err error) {
	err = withLockTimeout(ctx, pool, lockWait, func(tx pgx.Tx) error {
		var id *int64
		if err := tx.QueryRow(ctx, s.calls.Load().drop, p.Name).Scan(&id); err != nil {
			return err
		}
		if id != nil {
			waiting = *id
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("dropping outbox partition %s: %w", p.Name, err)
	}
	return waiting, nil
}

// withLockTimeout runs fn in a transaction whose statements wait at most
// lockWait for a lock: a partition's DDL, behind whose lock request the
// table's other users queue.
func withLockTimeout(ctx context.Context, pool Beginner, lockWait time.Duration, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockTimeoutSQL, strconv.FormatInt(lockWait.Milliseconds(), 10)+"ms"); err != nil {
			return fmt.Errorf("setting lock_timeout: %w", err)
		}
		return fn(tx)
	})
}

// Beginner starts transactions: a pool or a connection.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}
