package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/platform/checkevent"
)

type request struct {
	method, path, query string
	header              http.Header
	body                map[string]any
	list                []map[string]any
}

// receiver is a real HTTP server that records each request and answers
// with status.
func receiver(t *testing.T, status int) (string, <-chan request) {
	t.Helper()
	got := make(chan request, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		req := request{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone()}
		if json.Unmarshal(raw, &req.body) != nil {
			require.NoError(t, json.Unmarshal(raw, &req.list), string(raw))
		}
		got <- req
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, got
}

var opened = time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)

func incidentEvent(t *testing.T, resolved bool) (string, []byte) {
	t.Helper()
	in := checkevent.Incident{SchemaVersion: 1, EventID: "e1", IncidentID: 42, SiteID: 7, URL: "https://shop.example.com/",
		Kind: checkevent.KindDown, State: "opened", OpenedAt: opened, ErrorClass: "http_status", Error: "status 503",
		Regions: []string{"eu-west", "us-east"}}
	typ := checkevent.IncidentOpenedType
	if resolved {
		at := opened.Add(10 * time.Minute)
		in.State, in.ResolvedAt, in.Resolution, typ = "resolved", &at, "recovered", checkevent.IncidentResolvedType
	}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	return typ, b
}

func send(t *testing.T, ch Channel, resolved bool) {
	t.Helper()
	typ, in := incidentEvent(t, resolved)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, Send(ctx, Client(), ch, "e1", typ, in))
}

// PagerDuty's Events API v2: a trigger with the routing key, dedup_key the
// incident, a payload with summary, source and severity; the resolve with
// the same dedup_key. PagerDuty answers 202.
func TestPagerDutyEventsV2(t *testing.T) {
	url, got := receiver(t, http.StatusAccepted)
	ch := Channel{Name: "pd", Kind: PagerDuty, URL: url + "/v2/enqueue", Secret: "R0UTINGKEY"}
	send(t, ch, false)
	r := <-got
	require.Equal(t, "POST", r.method)
	require.Equal(t, "/v2/enqueue", r.path)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.Equal(t, "R0UTINGKEY", r.body["routing_key"])
	require.Equal(t, "trigger", r.body["event_action"])
	require.Equal(t, "sitewatch-incident-42", r.body["dedup_key"])
	p := r.body["payload"].(map[string]any)
	require.Equal(t, "https://shop.example.com/ is DOWN (incident 42): http_status — status 503 [eu-west, us-east]", p["summary"])
	require.Equal(t, "https://shop.example.com/", p["source"])
	require.Equal(t, "critical", p["severity"])
	require.Equal(t, "2026-12-04T03:00:00Z", p["timestamp"])
	require.Equal(t, float64(42), p["custom_details"].(map[string]any)["incident_id"])

	send(t, ch, true)
	r = <-got
	require.Equal(t, map[string]any{"routing_key": "R0UTINGKEY", "event_action": "resolve", "dedup_key": "sitewatch-incident-42"}, r.body)
}

// Opsgenie's Alert API: create with the API key as GenieKey, alias the
// incident, a message of at most 130 characters and a priority; close by
// the alias.
func TestOpsgenieAlertAPI(t *testing.T) {
	url, got := receiver(t, http.StatusAccepted)
	ch := Channel{Name: "og", Kind: Opsgenie, URL: url + "/", Secret: "API-KEY"}
	send(t, ch, false)
	r := <-got
	require.Equal(t, "/v2/alerts", r.path)
	require.Equal(t, "GenieKey API-KEY", r.header.Get("Authorization"))
	require.Equal(t, "sitewatch-incident-42", r.body["alias"])
	require.Equal(t, "P1", r.body["priority"])
	require.LessOrEqual(t, len(r.body["message"].(string)), 130)
	require.Contains(t, r.body["message"], "https://shop.example.com/ is DOWN")
	require.Equal(t, []any{"sitewatch", "down"}, r.body["tags"])
	require.Equal(t, "status 503", r.body["details"].(map[string]any)["error"])

	send(t, ch, true)
	r = <-got
	require.Equal(t, "/v2/alerts/sitewatch-incident-42/close", r.path)
	require.Equal(t, "identifierType=alias", r.query)
	require.Equal(t, "GenieKey API-KEY", r.header.Get("Authorization"))
	require.Equal(t, "resolved: recovered", r.body["note"])
}

// Alertmanager's v2 API: a list of alerts with labels, annotations and
// startsAt; the open one ends far ahead (sent once, it must not expire
// by resolve_timeout), the resolved one at the resolution.
func TestAlertmanagerV2Alerts(t *testing.T) {
	url, got := receiver(t, http.StatusOK)
	ch := Channel{Name: "am", Kind: Alertmanager, URL: url, Secret: "t0ken"}
	send(t, ch, false)
	r := <-got
	require.Equal(t, "/api/v2/alerts", r.path)
	require.Equal(t, "Bearer t0ken", r.header.Get("Authorization"))
	require.Len(t, r.list, 1)
	a := r.list[0]
	require.Equal(t, map[string]any{"alertname": "SitewatchIncident", "kind": "down", "site": "https://shop.example.com/",
		"incident": "42", "severity": "critical", "source": "sitewatch"}, a["labels"])
	require.Equal(t, "2026-12-04T03:00:00Z", a["startsAt"])
	ends, err := time.Parse(time.RFC3339Nano, a["endsAt"].(string))
	require.NoError(t, err)
	require.True(t, ends.After(opened.Add(300*24*time.Hour)), "an open incident's alert does not expire on its own")
	require.Equal(t, "status 503", a["annotations"].(map[string]any)["description"])

	send(t, ch, true)
	r = <-got
	require.Equal(t, r.list[0]["labels"], a["labels"], "the same alert")
	require.Equal(t, "2026-12-04T03:10:00Z", r.list[0]["endsAt"])

	// Without a token, no Authorization header.
	send(t, Channel{Name: "am", Kind: Alertmanager, URL: url}, false)
	require.Empty(t, (<-got).header.Get("Authorization"))
}

// A receiver's refusal is a failed delivery (retried), whatever the kind.
func TestProvidersRefusingIsAnError(t *testing.T) {
	url, got := receiver(t, http.StatusBadRequest)
	for _, ch := range []Channel{{Name: "pd", Kind: PagerDuty, URL: url, Secret: "k"}, {Name: "og", Kind: Opsgenie, URL: url, Secret: "k"},
		{Name: "am", Kind: Alertmanager, URL: url}} {
		typ, in := incidentEvent(t, false)
		err := Send(context.Background(), Client(), ch, "e1", typ, in)
		require.ErrorContains(t, err, "receiver answered 400 Bad Request", ch.Kind)
		require.NotContains(t, err.Error(), "k\"", "no secret in the error")
		<-got
	}
}
