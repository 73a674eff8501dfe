package store

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

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
	st := New(pool, checkevent.IncidentTopic, prometheus.NewRegistry())

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

// Every column the sink must fill is in statsColumns: the ones without a
// default, so a migration adding one fails here, not in production.
func TestStatsColumnsCoverTheTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	rows, err := pool.Query(ctx, `SELECT column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'stats' AND column_default IS NULL AND is_identity = 'NO'`)
	require.NoError(t, err)
	table, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	var ours []string
	for _, c := range statsColumns {
		ours = append(ours, c.name)
	}
	require.ElementsMatch(t, table, ours)
	require.Contains(t, insertStatsSQL, "INSERT INTO stats (event_id, site_id, url,")
	require.Contains(t, insertStatsSQL, "unnest($1::uuid[], $2::bigint[], $3::text[],")
	require.Contains(t, insertStatsSQL, fmt.Sprintf("$%d::%s[])", len(statsColumns), statsColumns[len(statsColumns)-1].sqlType))
}

// Each value lands in its own column, both when the batch is copied in and
// when it is inserted past an event already stored: every field of a
// record has a value no other field has, and each is read back by column
// name.
func TestEveryFieldLandsInItsColumn(t *testing.T) {
	t.Parallel()
	for _, redelivered := range []bool{false, true} {
		t.Run(fmt.Sprintf("redelivered=%v", redelivered), func(t *testing.T) {
			t.Parallel()
			everyFieldLandsInItsColumn(t, redelivered)
		})
	}
}

func everyFieldLandsInItsColumn(t *testing.T, redelivered bool) {
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	yes := true
	checked := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	leaf, chain := checked.Add(24*time.Hour), checked.Add(48*time.Hour)
	rtt := []float64{0.5, 1.5, 4.5}
	c := checkevent.Check{SchemaVersion: 4, Region: "eu-west", EventID: uuid.NewString(), SiteID: 11, URL: "https://url", CheckedAt: checked,
		StatusCode: 418, DurationMS: 12.5, Regex: "legacy", RegexMatched: &yes, ErrorClass: "class", Error: "error text",
		Regexes: []checkevent.RegexResult{{Pattern: "p", Match: true, Matched: true}},
		DNSMS:   1.25, ConnectMS: 2.25, TLSMS: 3.25, TTFBMS: 4.25, TransferMS: 5.25, BodyBytes: 66, Truncated: true,
		Redirects: 7, FinalURL: "https://final", TLSExpiry: &leaf, TLSChainExpiry: &chain, RemoteIP: "10.9.8.7",
		Kind: checkevent.KindTLS, TLSVersion: "TLS 1.3", TLSCipher: "TLS_AES_128_GCM_SHA256", OCSPStapled: &yes,
		DNSRCode: "NOERROR", DNSAnswers: []string{"192.0.2.1", "10 mail.example.com."},
		ICMPSent: 5, ICMPReceived: 4, RTTMinMS: &rtt[0], RTTAvgMS: &rtt[1], RTTMaxMS: &rtt[2]}
	st := New(pool, checkevent.IncidentTopic, prometheus.NewRegistry())
	batch := []Record{{Check: c, Topic: "topic", Partition: 8, Offset: 99}}
	if redelivered { // stored before, on its own
		stored := Record{Check: checkevent.Check{SchemaVersion: 3, EventID: uuid.NewString(), SiteID: 12, URL: "https://other",
			CheckedAt: checked}, Topic: "topic", Partition: 8, Offset: 98}
		_, err := st.Insert(ctx, []Record{stored})
		require.NoError(t, err)
		batch = append([]Record{stored}, batch...)
	}
	n, err := st.Insert(ctx, batch)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	if redelivered {
		require.EqualValues(t, 1, testutil.ToFloat64(st.redelivered), "the copy failed on the stored event; the batch was inserted")
	} else {
		require.Zero(t, testutil.ToFloat64(st.redelivered), "a batch of new events is copied in")
	}

	got := map[string]any{}
	rows, err := pool.Query(ctx, `SELECT event_id::text, site_id, url, checked_at, status_code, duration_ms, regex,
		regex_matched, error_class, error, topic_name, kafka_partition, kafka_offset, schema_version, regexes::text,
		dns_ms, connect_ms, tls_ms, ttfb_ms, transfer_ms, body_bytes, truncated, redirects, final_url, tls_expiry,
		tls_chain_expiry, remote_ip, region, kind, tls_version, tls_cipher, ocsp_stapled, dns_rcode,
		dns_answers::text, icmp_sent, icmp_received, rtt_min_ms, rtt_avg_ms, rtt_max_ms FROM stats WHERE event_id = $1`, c.EventID)
	require.NoError(t, err)
	require.True(t, rows.Next())
	values, err := rows.Values()
	require.NoError(t, err)
	for i, f := range rows.FieldDescriptions() {
		got[f.Name] = values[i]
	}
	rows.Close()
	require.NoError(t, rows.Err())

	want := map[string]any{"event_id": c.EventID, "site_id": int64(11), "url": "https://url", "checked_at": checked,
		"status_code": int32(418), "duration_ms": 12.5, "regex": "legacy", "regex_matched": true,
		"error_class": "class", "error": "error text", "topic_name": "topic", "kafka_partition": int32(8),
		"kafka_offset": int64(99), "schema_version": int16(4), "regexes": `[{"match": true, "matched": true, "pattern": "p"}]`,
		"dns_ms": 1.25, "connect_ms": 2.25, "tls_ms": 3.25, "ttfb_ms": 4.25, "transfer_ms": 5.25, "body_bytes": int64(66),
		"truncated": true, "redirects": int32(7), "final_url": "https://final", "tls_expiry": leaf,
		"tls_chain_expiry": chain, "remote_ip": "10.9.8.7", "region": "eu-west",
		"kind": "tls", "tls_version": "TLS 1.3", "tls_cipher": "TLS_AES_128_GCM_SHA256", "ocsp_stapled": true,
		"dns_rcode": "NOERROR", "dns_answers": `["192.0.2.1", "10 mail.example.com."]`,
		"icmp_sent": int32(5), "icmp_received": int32(4), "rtt_min_ms": 0.5, "rtt_avg_ms": 1.5, "rtt_max_ms": 4.5}
	for name, v := range got {
		if tm, ok := v.(time.Time); ok {
			got[name] = tm.UTC()
		}
	}
	require.Equal(t, want, got)
	var total int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM stats").Scan(&total))
	require.Equal(t, len(batch), total, "one row per event")
}

// A check Kafka delivers twice is stored once and counted once: only rows
// stored for the first time move a site's state.
func TestRedeliveredChecksNeverDoubleApply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	var site int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO sites (url, interval_ms, timeout_ms) VALUES ('https://a/', 1000, 1000) RETURNING id`).Scan(&site))
	failed := func(at time.Time) Record {
		return Record{Check: checkevent.Check{SchemaVersion: 3, Region: "local", EventID: uuid.NewString(), SiteID: site,
			URL: "https://a/", CheckedAt: at, ErrorClass: "connect", Error: "refused"}, Topic: "t"}
	}
	st := New(pool, checkevent.IncidentTopic, prometheus.NewRegistry())
	first := failed(time.Now())
	_, err := st.Insert(ctx, []Record{first})
	require.NoError(t, err)
	n, err := st.Insert(ctx, []Record{first}) // the same message again
	require.NoError(t, err)
	require.Zero(t, n)
	require.EqualValues(t, 1, testutil.ToFloat64(st.redelivered))
	var incidents int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM incidents").Scan(&incidents))
	require.Zero(t, incidents, "a re-delivered failure is not a second failure")

	_, err = st.Insert(ctx, []Record{failed(time.Now().Add(time.Second))})
	require.NoError(t, err)
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM incidents WHERE kind = 'down' AND resolved_at IS NULL").Scan(&incidents))
	require.Equal(t, 1, incidents, "the second real failure opens it, in the same transaction as the stats row")
	var announced int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE topic_name = 'sitewatch.incidents'").Scan(&announced))
	require.Equal(t, 1, announced)
}
