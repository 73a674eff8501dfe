package config_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/config"
	"github.com/sitewatch/sitewatch/platform/pgtest"
	"github.com/sitewatch/sitewatch/platform/retry"
)

// The services' leases are session advisory locks: a connection must be a
// server session of its own. Directly and through PgBouncer in session
// mode it is; in transaction or statement mode the check refuses, naming
// the setting, and waiting does not mend it.
func TestCheckSessionsRefusesATransactionPooler(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, config.CheckSessions(ctx, dbtest.New(t)), "directly")
	// A server whose default client encoding is not UTF8 (the compose
	// stand-in image's), which pgx's simple protocol refuses.
	require.NoError(t, config.CheckSessions(ctx, dbURL+"&client_encoding=LATIN1"), "in another client encoding")
	require.NoError(t, config.CheckSessions(ctx, pgtest.Bouncer(t, dbURL, "session")), "PgBouncer in session mode")
	for _, mode := range []string{"transaction", "statement"} {
		err := config.CheckSessions(ctx, pgtest.Bouncer(t, dbURL, mode))
		require.ErrorIs(t, err, config.ErrSharedSessions, mode)
		require.ErrorContains(t, err, "pool_mode = session", mode)
		calls := 0
		err = retry.Do(ctx, retry.Policy{Initial: time.Millisecond, Max: time.Millisecond, AttemptTimeout: 30 * time.Second, MaxAttempts: 3}, func(ctx context.Context) error {
			calls++
			return config.CheckSessions(ctx, pgtest.Bouncer(t, dbURL, mode))
		}, nil)
		require.True(t, errors.Is(err, config.ErrSharedSessions) && calls == 1, "not retried (%d calls): %v", calls, err)
	}
}

// A pool's sessions get the settings its service asks for (the relay: no
// parallel plans), but for those its URL sets itself.
func TestPoolSessionsGetTheirServicesSettings(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	show := func(url string) (workers, jit string) {
		pool, err := config.OpenPool(ctx, url, "test", 1, config.Setting{Name: "max_parallel_workers_per_gather", Value: "0"})
		require.NoError(t, err)
		defer pool.Close()
		require.NoError(t, pool.QueryRow(ctx, "SELECT current_setting('max_parallel_workers_per_gather'), current_setting('jit')").Scan(&workers, &jit))
		return workers, jit
	}
	workers, jit := show(dbURL)
	require.Equal(t, []string{"0", "off"}, []string{workers, jit}, "asked by the service")
	workers, jit = show(dbURL + "&max_parallel_workers_per_gather=3")
	require.Equal(t, []string{"3", "off"}, []string{workers, jit}, "the URL's own")
}

// A service's sessions do not JIT-compile: the relay's claim spent 1.5 s
// compiling for 0.3 ms of work. Set per session, so through PgBouncer too
// (which refuses the startup parameter); a URL that sets jit keeps it.
func TestPoolSessionsDoNotJITCompile(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	jit := func(url string) string {
		pool, err := config.OpenPool(ctx, url, "test", 1)
		require.NoError(t, err)
		defer pool.Close()
		var v string
		require.NoError(t, pool.QueryRow(ctx, "SHOW jit").Scan(&v))
		return v
	}
	require.Equal(t, "off", jit(dbURL), "directly")
	require.Equal(t, "off", jit(pgtest.Bouncer(t, dbURL, "session")), "through PgBouncer in session mode")
	require.Equal(t, "on", jit(dbURL+"&jit=on"), "asked for")
}
