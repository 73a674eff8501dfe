package outboxtest

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sitewatch/sitewatch/outbox"
)

var (
	//go:embed columns.sql
	columnsSQL string
	//go:embed indexes.sql
	indexesSQL string
	//go:embed triggers.sql
	triggersSQL string
	//go:embed channel.sql
	channelSQL string
	//go:embed options.sql
	optionsSQL string
	//go:embed functions.sql
	functionsSQL string
)

// LegacyDDL creates an outbox table named "outbox" of the earlier,
// unpartitioned layout, as outbox.DDL made it before sitewatch's migration
// 00029: for tests that the relay still serves one, and of its conversion
// (CALL outbox_partition).
//
//go:embed legacy.sql
var LegacyDDL string

// Shape is what the catalog says of a table: the parts the relay relies on.
type Shape struct {
	Columns  []Column
	Indexes  []string // definitions without names: "UNIQUE USING btree (event_id)"
	Triggers []Trigger
	// Options are the storage parameters ("fillfactor=50",
	// "autovacuum_vacuum_threshold=10000"), sorted; of a partitioned
	// table, its newest partition's, which the next ones copy. A team's
	// table may tune its own: Diff names only a fillfactor above 50 in a
	// partitioned table, which leaves too little room for the publish flip.
	Options []string
	// Partitioned is outbox.DDL's layout; the earlier single table has the
	// same columns and still works (the relay deletes its published rows
	// and relies on vacuum): Check accepts it, Diff says how to convert it.
	Partitioned bool
	// Functions are outbox.sql's partition functions in the table's schema.
	Functions []Function
}

// Function is one of outbox.sql's partition functions as the catalog has it.
type Function struct {
	Signature string // "outbox_drop(part regclass)"
	BodyMD5   string
}

// relayCalls are the partition functions the relay calls: it refuses a
// partitioned table without them.
var relayCalls = []string{"outbox_partitions(", "outbox_extend(", "outbox_drop("}

// Column is one column as the catalog describes it.
type Column struct {
	Name     string
	Type     string // format_type: "bigint", "timestamp with time zone"
	NotNull  bool
	Identity string // "a" for GENERATED ALWAYS AS IDENTITY
	Computed string // "s" for a stored generated column
	Expr     string // the default or generation expression
}

func (c Column) String() string {
	s := c.Name + " " + c.Type
	if c.NotNull {
		s += " NOT NULL"
	}
	if c.Identity != "" {
		s += " IDENTITY"
	}
	if c.Computed != "" {
		s += " GENERATED AS (" + c.Expr + ")"
	} else if c.Expr != "" {
		s += " DEFAULT " + c.Expr
	}
	return s
}

// Trigger is one user trigger: when it fires and what it calls.
type Trigger struct {
	Type     int // pg_trigger.tgtype
	Function string
}

func (t Trigger) String() string {
	return fmt.Sprintf("trigger calling %s() (tgtype %d)", t.Function, t.Type)
}

// Querier is what reading a shape needs: a pgx connection, pool or transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ReadShape reads the shape of table ("outbox" or "schema.outbox").
func ReadShape(ctx context.Context, db Querier, table string) (Shape, error) {
	ident, err := outbox.QuoteTable(table)
	if err != nil {
		return Shape{}, err
	}
	var s Shape
	rows, err := db.Query(ctx, columnsSQL, ident)
	if err == nil {
		s.Columns, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Column])
	}
	if err != nil {
		return Shape{}, fmt.Errorf("reading the columns of %s: %w", table, err)
	}
	rows, err = db.Query(ctx, indexesSQL, ident)
	if err == nil {
		s.Indexes, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return Shape{}, fmt.Errorf("reading the indexes of %s: %w", table, err)
	}
	rows, err = db.Query(ctx, triggersSQL, ident)
	if err == nil {
		s.Triggers, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Trigger])
	}
	if err != nil {
		return Shape{}, fmt.Errorf("reading the triggers of %s: %w", table, err)
	}
	if err := db.QueryRow(ctx, optionsSQL, ident).Scan(&s.Options, &s.Partitioned); err != nil {
		return Shape{}, fmt.Errorf("reading the storage parameters of %s: %w", table, err)
	}
	rows, err = db.Query(ctx, functionsSQL, ident)
	if err == nil {
		s.Functions, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Function])
	}
	if err != nil {
		return Shape{}, fmt.Errorf("reading the partition functions of %s: %w", table, err)
	}
	return s, nil
}

// ReferenceShape is the shape outbox.DDL creates, read from the database
// itself (in a schema created and rolled back in one transaction), so the
// comparison does not depend on how this server version prints types and
// expressions.
func ReferenceShape(ctx context.Context, conn interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}) (Shape, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return Shape{}, fmt.Errorf("beginning the reference transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	schema := "outboxtest_ref_" + randomHex(6)
	if _, err := tx.Exec(ctx, "CREATE SCHEMA "+schema+"; SET LOCAL search_path = "+schema); err != nil {
		return Shape{}, fmt.Errorf("creating the reference schema: %w", err)
	}
	if _, err := tx.Exec(ctx, outbox.DDL); err != nil {
		return Shape{}, fmt.Errorf("applying outbox.DDL: %w", err)
	}
	return ReadShape(ctx, tx, schema+".outbox")
}

// Diff compares a table's shape with the reference. Missing lists what
// the relay needs and the table lacks or has differently; Extra lists what
// the table has beyond the reference (harmless to the relay: a team may
// add columns of its own).
func Diff(table, ref Shape) (missing, extra []string) {
	cols := map[string]Column{}
	for _, c := range table.Columns {
		cols[c.Name] = sequenceAnonymous(c)
	}
	for _, want := range ref.Columns {
		want = sequenceAnonymous(want)
		got, ok := cols[want.Name]
		switch {
		case !ok:
			missing = append(missing, "column "+want.String()+": missing")
		case got != want:
			missing = append(missing, "column "+want.Name+": want "+want.String()+", have "+got.String())
		}
		delete(cols, want.Name)
	}
	for _, c := range table.Columns {
		if _, ok := cols[c.Name]; ok {
			extra = append(extra, "column "+c.String())
		}
	}
	for _, ix := range ref.Indexes {
		if !slices.Contains(table.Indexes, ix) {
			missing = append(missing, "index "+ix+": missing")
		}
	}
	for _, ix := range table.Indexes {
		if !slices.Contains(ref.Indexes, ix) {
			extra = append(extra, "index "+ix)
		}
	}
	for _, tr := range ref.Triggers {
		if !slices.ContainsFunc(table.Triggers, func(t Trigger) bool { return t.Type == tr.Type }) {
			missing = append(missing, "notify "+tr.String()+": missing (the relay would only poll)")
		}
	}
	for _, tr := range table.Triggers {
		if !slices.Contains(ref.Triggers, tr) {
			extra = append(extra, tr.String())
		}
	}
	if table.Partitioned {
		for _, want := range ref.Functions {
			i := slices.IndexFunc(table.Functions, func(f Function) bool { return f.Signature == want.Signature })
			switch {
			case i < 0 && slices.ContainsFunc(relayCalls, func(c string) bool { return strings.HasPrefix(want.Signature, c) }):
				missing = append(missing, "function "+want.Signature+": missing in the table's schema (the relay refuses the table): apply outbox.sql")
			case i < 0:
				extra = append(extra, "function "+want.Signature+": missing in the table's schema (only to convert a table): apply outbox.sql")
			case table.Functions[i].BodyMD5 != want.BodyMD5:
				extra = append(extra, "function "+want.Signature+": not outbox.DDL's (of an earlier outbox.sql?): apply outbox.sql again")
			}
		}
	}
	if ff := table.Fillfactor(); table.Partitioned && ff > 50 {
		extra = append(extra, fmt.Sprintf("storage parameter fillfactor=%d: above 50, most publish flips leave their page "+
			"(no HOT update; each adds an entry to every unique index): apply outbox.sql again", ff))
	}
	if ref.Partitioned && !table.Partitioned && len(table.Columns) > 0 {
		extra = append(extra, "layout: one table, the earlier layout (it works, but its size depends on vacuum): "+
			"CALL outbox_partition('<table>') of outbox.sql converts it in place")
	}
	return missing, extra
}

// Check reports, in one error naming each, everything the relay needs of
// table that the table lacks; nil means the relay can serve it.
func Check(ctx context.Context, conn interface {
	Querier
	Begin(ctx context.Context) (pgx.Tx, error)
}, table string) error {
	ref, err := ReferenceShape(ctx, conn)
	if err != nil {
		return err
	}
	got, err := ReadShape(ctx, conn, table)
	if err != nil {
		return err
	}
	if len(got.Columns) == 0 {
		return fmt.Errorf("outbox table %s: no such table", table)
	}
	missing, _ := Diff(got, ref)
	if len(missing) > 0 {
		return fmt.Errorf("outbox table %s cannot be served by the relay:\n  %s", table, strings.Join(missing, "\n  "))
	}
	return nil
}

// sequenceAnonymous leaves the sequence's name out of a nextval default
// (each table has its own: "billing_outbox_id_seq"), and reads an identity
// column, the earlier layout's id, as one: either numbers rows as written.
func sequenceAnonymous(c Column) Column {
	if c.Identity != "" || strings.HasPrefix(c.Expr, "nextval(") && c.Computed == "" {
		c.Identity, c.Expr = "", "nextval(its sequence)"
	}
	return c
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Fillfactor is the fillfactor of the table's storage parameters (of its
// newest partition): PostgreSQL's 100 if they do not set it.
func (s Shape) Fillfactor() int {
	for _, o := range s.Options {
		if v, ok := strings.CutPrefix(o, "fillfactor="); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
	}
	return 100
}
