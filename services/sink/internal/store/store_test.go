package store

import (
	"context"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
)

func TestInsertStoresBothSchemaVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	st := New(pool)

	// A version 1 payload as the old monitor wrote it, decoded as the sink does.
	v1ID := uuid.NewString()
	v1, err := checkevent.Decode([]byte(`{"schema_version":1,"event_id":"` + v1ID + `","site_id":1,"url":"http://a",` +
		`"checked_at":"2026-01-01T00:00:00Z","status_code":200,"duration_ms":3,"regex":"ok","regex_matched":true}`))
	require.NoError(t, err)

	no := false
	leaf := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	chain := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	v2 := checkevent.Check{SchemaVersion: 2, EventID: uuid.NewString(), SiteID: 2, URL: "https://b",
		CheckedAt: time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC), StatusCode: 200, DurationMS: 9,
		RegexMatched: &no, ErrorClass: "regex", Error: "body matches must-not-match \"error\"",
		Regexes: []checkevent.RegexResult{{Pattern: "ok", Match: true, Matched: true}, {Pattern: "error", Matched: true}},
		DNSMS:   0, ConnectMS: 1.5, TLSMS: 2.5, TTFBMS: 3.5, TransferMS: 1, BodyBytes: 4096, Truncated: true,
		Redirects: 2, FinalURL: "https://b/final", TLSExpiry: &leaf, TLSChainExpiry: &chain, RemoteIP: "127.0.0.1"}

	n, err := st.Insert(ctx, []Record{{Check: v1, Topic: "t", Partition: 0, Offset: 1}, {Check: v2, Topic: "t", Partition: 1, Offset: 7}})
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	n, err = st.Insert(ctx, []Record{{Check: v2, Topic: "t", Partition: 1, Offset: 8}})
	require.NoError(t, err)
	require.Zero(t, n, "a re-delivered event makes no second row")

	type row struct {
		version                           int
		regex                             *string
		regexes                           []checkevent.RegexResult
		dns, connect, tls, ttfb, transfer *float64
		bodyBytes                         *int64
		truncated                         *bool
		redirects                         *int
		finalURL, remoteIP                *string
		tlsExpiry, chainExpiry            *time.Time
	}
	read := func(id string) row {
		var r row
		var regexes []byte
		require.NoError(t, pool.QueryRow(ctx, `SELECT schema_version, regex, regexes, dns_ms, connect_ms, tls_ms, ttfb_ms,
			transfer_ms, body_bytes, truncated, redirects, final_url, remote_ip, tls_expiry, tls_chain_expiry
			FROM stats WHERE event_id = $1`, id).Scan(&r.version, &r.regex, &regexes, &r.dns, &r.connect, &r.tls, &r.ttfb,
			&r.transfer, &r.bodyBytes, &r.truncated, &r.redirects, &r.finalURL, &r.remoteIP, &r.tlsExpiry, &r.chainExpiry))
		if regexes != nil {
			require.NoError(t, json.Unmarshal(regexes, &r.regexes))
		}
		return r
	}

	old := read(v1ID)
	require.Equal(t, 1, old.version)
	require.Equal(t, "ok", *old.regex)
	require.Equal(t, []checkevent.RegexResult{{Pattern: "ok", Match: true, Matched: true}}, old.regexes)
	require.Nil(t, old.dns, "version 1 had no phases: NULL, not 0")
	require.Nil(t, old.bodyBytes)
	require.Nil(t, old.truncated)
	require.Nil(t, old.tlsExpiry)

	cur := read(v2.EventID)
	require.Equal(t, 2, cur.version)
	require.Nil(t, cur.regex)
	require.Equal(t, v2.Regexes, cur.regexes)
	require.Equal(t, 0.0, *cur.dns)
	require.Equal(t, 1.5, *cur.connect)
	require.Equal(t, 2.5, *cur.tls)
	require.Equal(t, 3.5, *cur.ttfb)
	require.Equal(t, 1.0, *cur.transfer)
	require.EqualValues(t, 4096, *cur.bodyBytes)
	require.True(t, *cur.truncated)
	require.Equal(t, 2, *cur.redirects)
	require.Equal(t, "https://b/final", *cur.finalURL)
	require.Equal(t, "127.0.0.1", *cur.remoteIP)
	require.True(t, leaf.Equal(*cur.tlsExpiry))
	require.True(t, chain.Equal(*cur.chainExpiry))
}

func TestVersion3StoresTheRegion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	v3 := checkevent.Check{SchemaVersion: 3, EventID: uuid.NewString(), SiteID: 3, URL: "https://c",
		CheckedAt: time.Date(2026, 1, 1, 0, 0, 2, 0, time.UTC), StatusCode: 204, DurationMS: 1.25, Region: "eu-west"}
	n, err := New(pool).Insert(ctx, []Record{{Check: v3, Topic: "t", Partition: 2, Offset: 9}})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	var region string
	var status, partition int
	var offset int64
	var duration float64
	var checked time.Time
	require.NoError(t, pool.QueryRow(ctx, `SELECT region, status_code, kafka_partition, kafka_offset, duration_ms, checked_at
		FROM stats WHERE event_id = $1`, v3.EventID).Scan(&region, &status, &partition, &offset, &duration, &checked))
	require.Equal(t, "eu-west", region)
	require.Equal(t, 204, status)
	require.Equal(t, 2, partition)
	require.EqualValues(t, 9, offset)
	require.Equal(t, 1.25, duration)
	require.True(t, v3.CheckedAt.Equal(checked))
}

// The row struct and insert_stats.sql name the same columns, each once, and
// every one exists in stats: a field added on one side only fails here.
func TestRowAndInsertNameTheSameColumns(t *testing.T) {
	t.Parallel()
	var keys []string
	rt := reflect.TypeFor[row]()
	for i := range rt.NumField() {
		keys = append(keys, strings.Split(rt.Field(i).Tag.Get("json"), ",")[0])
	}
	def := regexp.MustCompile(`(?s)AS r\((.*?)\)\s*ON CONFLICT`).FindStringSubmatch(insertStatsSQL)
	require.NotNil(t, def, "insert_stats.sql defines the recordset's columns")
	var cols []string
	for _, c := range strings.Split(def[1], ",") {
		cols = append(cols, strings.Fields(c)[0])
	}
	require.Equal(t, keys, cols, "row's JSON keys, in order, are the recordset's columns")
	insertList := regexp.MustCompile(`(?s)INSERT INTO stats \((.*?)\)`).FindStringSubmatch(insertStatsSQL)
	require.NotNil(t, insertList)
	var inserted []string
	for _, c := range strings.Split(insertList[1], ",") {
		inserted = append(inserted, strings.TrimSpace(c))
	}
	require.Equal(t, cols, inserted, "every recordset column is inserted")

	pool := dbtest.Pool(t, dbtest.New(t))
	rows, err := pool.Query(context.Background(), `SELECT column_name::text FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'stats'`)
	require.NoError(t, err)
	existing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, c := range cols {
		require.Contains(t, existing, c)
	}
}
