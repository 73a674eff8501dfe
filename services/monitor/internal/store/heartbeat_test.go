package store

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// beatMessage writes what the store tells about a beat, for the tests to read.
func beatMessage(b Beat) (outbox.Message, bool) {
	v, _ := json.Marshal(map[string]any{"site": b.Site.ID, "missed": b.Missed, "failed": b.Signal.Failed,
		"exit": b.Signal.ExitStatus, "started": b.Started != nil, "last_ping": b.LastPing != nil})
	return outbox.Message{Topic: b.Site.Topic, Key: []byte("k"), Payload: v}, true
}

type beatRow struct {
	Site     int64 `json:"site"`
	Missed   bool  `json:"missed"`
	Failed   bool  `json:"failed"`
	Exit     int   `json:"exit"`
	Started  bool  `json:"started"`
	LastPing bool  `json:"last_ping"`
}

func beatsWritten(t *testing.T, pool *pgxpool.Pool) []beatRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT payload FROM outbox ORDER BY id")
	require.NoError(t, err)
	defer rows.Close()
	var out []beatRow
	for rows.Next() {
		var p []byte
		require.NoError(t, rows.Scan(&p))
		var b beatRow
		require.NoError(t, json.Unmarshal(p, &b))
		out = append(out, b)
	}
	require.NoError(t, rows.Err())
	return out
}

// due moves a heartbeat's deadline into the past, as time passing would.
func due(t *testing.T, pool *pgxpool.Pool, id int64) {
	t.Helper()
	tag, err := pool.Exec(context.Background(), "UPDATE heartbeats SET deadline = now() - interval '1 second' WHERE site_id = $1", id)
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected())
}

func TestHeartbeatPingsAndMissedDeadlinesAreWrittenOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	st := New(pool)
	added, err := st.AddSites(ctx, []site.Site{
		{URL: "heartbeat://nightly-backup?grace=30s", Interval: time.Hour, Enabled: true},
		{URL: "http://a.example", Enabled: true},
		{URL: "heartbeat://paused", Interval: time.Hour},
	})
	require.NoError(t, err)
	hb, web, paused := added[0], added[1], added[2]
	require.True(t, site.WellFormedPingToken(hb.PingToken), "a heartbeat site gets its token: %q", hb.PingToken)
	require.Empty(t, web.PingToken)
	var graceMS *int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT grace_ms FROM sites WHERE id = $1", hb.ID).Scan(&graceMS))
	require.EqualValues(t, 30_000, *graceMS)

	// The scheduler never sees heartbeat sites: their jobs report on them.
	all, err := st.SiteChanges(ctx, time.Time{}, everywhere)
	require.NoError(t, err)
	require.Equal(t, []int64{web.ID}, all.Enabled)

	// Nothing is due before the first deadline (added + interval + grace).
	n, err := st.SweepHeartbeats(ctx, everywhere.Shards, beatMessage)
	require.NoError(t, err)
	require.Zero(t, n)
	var deadline time.Time
	require.NoError(t, pool.QueryRow(ctx, "SELECT deadline FROM heartbeats WHERE site_id = $1", hb.ID).Scan(&deadline))
	require.WithinDuration(t, hb.Updated.Add(time.Hour+30*time.Second), deadline, time.Second)

	// Unknown tokens and a disabled site's are not found.
	found, err := st.Ping(ctx, "x"+hb.PingToken[1:], Signal{ExitStatus: -1}, beatMessage)
	require.NoError(t, err)
	require.False(t, found)
	found, err = st.Ping(ctx, paused.PingToken, Signal{ExitStatus: -1}, beatMessage)
	require.NoError(t, err)
	require.False(t, found, "a disabled heartbeat takes no ping")

	// /start writes nothing; the ping that ends the run is a check.
	found, err = st.Ping(ctx, hb.PingToken, Signal{Start: true, ExitStatus: -1}, beatMessage)
	require.NoError(t, err)
	require.True(t, found)
	require.Empty(t, beatsWritten(t, pool))
	_, err = st.Ping(ctx, hb.PingToken, Signal{ExitStatus: 0}, beatMessage)
	require.NoError(t, err)
	require.Equal(t, []beatRow{{Site: hb.ID, Exit: 0, Started: true}}, beatsWritten(t, pool))
	require.NoError(t, pool.QueryRow(ctx, "SELECT deadline FROM heartbeats WHERE site_id = $1", hb.ID).Scan(&deadline))
	require.WithinDuration(t, time.Now().Add(time.Hour+30*time.Second), deadline, 5*time.Second, "the next ping is due in interval + grace")

	// A failure is a check too.
	_, err = st.Ping(ctx, hb.PingToken, Signal{Failed: true, ExitStatus: 3}, beatMessage)
	require.NoError(t, err)
	require.Equal(t, beatRow{Site: hb.ID, Failed: true, Exit: 3}, beatsWritten(t, pool)[1])

	// A deadline passed is written once, however many replicas sweep at
	// once, and the next one is an interval on.
	due(t, pool, hb.ID)
	var wg sync.WaitGroup
	counts := make([]int, 8)
	for i := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := st.SweepHeartbeats(ctx, everywhere.Shards, beatMessage)
			require.NoError(t, err)
			counts[i] = n
		}()
	}
	wg.Wait()
	total := 0
	for _, n := range counts {
		total += n
	}
	require.Equal(t, 1, total, "one missed check for one passed deadline: %v", counts)
	require.Equal(t, beatRow{Site: hb.ID, Missed: true, Exit: -1, LastPing: true}, beatsWritten(t, pool)[2])
	n, err = st.SweepHeartbeats(ctx, everywhere.Shards, beatMessage)
	require.NoError(t, err)
	require.Zero(t, n)
	require.NoError(t, pool.QueryRow(ctx, "SELECT deadline FROM heartbeats WHERE site_id = $1", hb.ID).Scan(&deadline))
	require.WithinDuration(t, time.Now().Add(time.Hour), deadline, 5*time.Second, "still silent: the next failed check an interval on")

	// A replica sweeps only its shards.
	due(t, pool, hb.ID)
	n, err = st.SweepHeartbeats(ctx, []int16{int16((hb.ID + 1) % site.Shards)}, beatMessage)
	require.NoError(t, err)
	require.Zero(t, n)

	// A run started and never ended misses the grace after its start.
	_, err = st.Ping(ctx, hb.PingToken, Signal{Start: true, ExitStatus: -1}, beatMessage)
	require.NoError(t, err)
	require.NoError(t, pool.QueryRow(ctx, "SELECT deadline FROM heartbeats WHERE site_id = $1", hb.ID).Scan(&deadline))
	require.WithinDuration(t, time.Now().Add(30*time.Second), deadline, 5*time.Second, "a run must end within the grace")
	due(t, pool, hb.ID)
	n, err = st.SweepHeartbeats(ctx, everywhere.Shards, beatMessage)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, beatRow{Site: hb.ID, Missed: true, Exit: -1, Started: true, LastPing: true}, beatsWritten(t, pool)[3])

	// Re-enabled after a long pause, a site gets a fresh deadline rather
	// than a missed check at once.
	_, err = st.UpdateSite(ctx, paused.ID, func(s *site.Site) { s.Enabled = true })
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "INSERT INTO heartbeats (site_id, deadline, site_version) VALUES ($1, now() - interval '30 days', now() - interval '31 days')", paused.ID)
	require.NoError(t, err)
	n, err = st.SweepHeartbeats(ctx, everywhere.Shards, beatMessage)
	require.NoError(t, err)
	require.Zero(t, n, "the change moved the deadline")

	// The ping token can be replaced; the old one stops working.
	token, err := st.RotatePingToken(ctx, hb.ID)
	require.NoError(t, err)
	found, err = st.Ping(ctx, hb.PingToken, Signal{ExitStatus: -1}, beatMessage)
	require.NoError(t, err)
	require.False(t, found)
	found, err = st.Ping(ctx, token, Signal{ExitStatus: -1}, beatMessage)
	require.NoError(t, err)
	require.True(t, found)
	_, err = st.RotatePingToken(ctx, web.ID)
	require.ErrorIs(t, err, ErrNotHeartbeat)
	_, err = st.RotatePingToken(ctx, 999)
	require.ErrorIs(t, err, ErrNotFound)

	// A site cannot turn into a heartbeat or out of one.
	_, err = st.UpdateSite(ctx, web.ID, func(s *site.Site) { s.URL = "heartbeat://web" })
	require.ErrorContains(t, err, "cannot become or stop being a heartbeat")
}
