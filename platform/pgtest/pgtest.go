// Package pgtest runs the PostgreSQL set-ups of production for tests, on
// loopback and private to the test: a database of its own, PgBouncer in
// front of the development server (scripts/pgbouncer.sh), and a primary
// with a synchronous streaming standby that can take over
// (scripts/pgha.sh).
package pgtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/db"
	"github.com/sitewatch/sitewatch/outbox/outboxtest"
	"github.com/sitewatch/sitewatch/platform/porttest"
)

// script is the path of scripts/NAME.
func script(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", name)
}

// run runs scripts/NAME with args, failing t with its output.
func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(script(name), args...).CombinedOutput(); err != nil {
		t.Fatalf("scripts/%s %v: %v\n%s", name, args, err, out)
	}
}

// dir is a directory the servers' user (postgres, as root) may own; not
// t.TempDir, whose parent only root may enter. logs are shown if t fails.
func dir(t testing.TB, prefix string, logs ...string) string {
	t.Helper()
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range logs {
				if b, err := os.ReadFile(filepath.Join(d, l)); err == nil {
					t.Logf("---- %s ----\n%s", l, b)
				}
			}
		}
		_ = os.RemoveAll(d)
	})
	return d
}

// exec runs sql on databaseURL.
func execSQL(databaseURL, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(ctx) }()
	_, err = conn.Exec(ctx, sql)
	return err
}

// parse is databaseURL without a search_path, and with database name
// unless name is empty.
func parse(t testing.TB, databaseURL, name string) *url.URL {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("DATABASE_URL must be a postgres:// URL here (err %v)", err)
	}
	if name != "" {
		u.Path = "/" + name
	}
	q := u.Query()
	q.Del("search_path")
	u.RawQuery = q.Encode()
	return u
}

// NewDatabase creates a database of the test's own on the development
// server (DATABASE_URL), migrated, dropped when the test ends, and returns
// its URL: for what a schema (dbtest.New) cannot do, such as going through
// PgBouncer, which refuses a search_path startup parameter.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := outboxtest.DatabaseURL(t)
	name := "sw_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := execSQL(admin, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := execSQL(admin, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Logf("dropping database %s: %v", name, err)
		}
	})
	u := parse(t, admin, name).String()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := db.Migrate(ctx, u, zap.NewNop()); err != nil {
		t.Fatalf("migrating database %s: %v", name, err)
	}
	return u
}

// Bouncer starts PgBouncer in pool mode (session, transaction or
// statement) in front of databaseURL's server, a URL of the development
// server's, and returns databaseURL through it. It stops when the test ends.
func Bouncer(t testing.TB, databaseURL, mode string) string {
	t.Helper()
	u := parse(t, databaseURL, "")
	_, upstream, err := net.SplitHostPort(u.Host)
	if err != nil {
		t.Fatalf("DATABASE_URL %s: want host:port: %v", u.Redacted(), err)
	}
	d := dir(t, "sitewatch-pgbouncer-", "pgbouncer.log", "start.log")
	port := strconv.Itoa(porttest.Port(t))
	run(t, "pgbouncer.sh", "up", d, port, mode, upstream)
	t.Cleanup(func() {
		if out, err := exec.Command(script("pgbouncer.sh"), "down", d).CombinedOutput(); err != nil {
			t.Logf("scripts/pgbouncer.sh down: %v\n%s", err, out)
		}
	})
	u.Host = net.JoinHostPort("127.0.0.1", port)
	return u.String()
}

// Pair is a primary and its synchronous standby.
type Pair struct {
	t                      testing.TB
	dir                    string
	Primary, Standby       int    // their ports
	URL                    string // both hosts, target_session_attrs=read-write: whichever is primary
	PrimaryURL, StandbyURL string // one server each
}

// StartPair starts a primary on one port and its synchronous streaming
// standby on another, with database and owner role sitewatch; both stop
// when the test ends.
func StartPair(t testing.TB) *Pair {
	t.Helper()
	p := &Pair{t: t, dir: dir(t, "sitewatch-pgha-", "primary.log", "standby.log", "bootstrap.log", "basebackup.log"),
		Primary: porttest.Port(t), Standby: porttest.Port(t)}
	run(t, "pgha.sh", "up", p.dir, strconv.Itoa(p.Primary), strconv.Itoa(p.Standby))
	t.Cleanup(func() {
		if out, err := exec.Command(script("pgha.sh"), "down", p.dir).CombinedOutput(); err != nil {
			t.Logf("scripts/pgha.sh down: %v\n%s", err, out)
		}
	})
	one := func(port int) string {
		return fmt.Sprintf("postgres://sitewatch@127.0.0.1:%d/sitewatch?sslmode=disable", port)
	}
	p.PrimaryURL, p.StandbyURL = one(p.Primary), one(p.Standby)
	p.URL = fmt.Sprintf("postgres://sitewatch@127.0.0.1:%d,127.0.0.1:%d/sitewatch?sslmode=disable&target_session_attrs=read-write",
		p.Primary, p.Standby)
	return p
}

// CrashPrimary stops the primary in immediate mode: a crash, no checkpoint.
func (p *Pair) CrashPrimary() { run(p.t, "pgha.sh", "stop", p.dir, "primary", "immediate") }

// Promote makes the standby the primary.
func (p *Pair) Promote() { run(p.t, "pgha.sh", "promote", p.dir) }
