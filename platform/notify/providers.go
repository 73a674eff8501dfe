package notify

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sitewatch/sitewatch/platform/checkevent"
)

// Channel kinds for the alerting tools on-call teams already run. Each
// folds repeats by the incident: a retried or repeated trigger is the same
// alert, and the resolve closes it.
const (
	// PagerDuty: URL the Events API v2 endpoint
	// (https://events.pagerduty.com/v2/enqueue); Secret the integration's
	// routing key. dedup_key is the incident.
	PagerDuty = "pagerduty"
	// Opsgenie: URL the Alert API's base (https://api.opsgenie.com, or
	// https://api.eu.opsgenie.com); Secret the API key. alias is the
	// incident; the resolve closes the alert by it.
	Opsgenie = "opsgenie"
	// Alertmanager: URL Alertmanager's base (http://alertmanager:9093);
	// Secret, if any, a bearer token. The incident is an alert of its v2
	// API, so the team's routes, silences and inhibitions apply.
	Alertmanager = "alertmanager"
)

// NeedsSecret reports whether a channel of kind cannot work without a
// secret (a routing or API key).
func NeedsSecret(kind string) bool { return kind == PagerDuty || kind == Opsgenie || kind == Telegram }

// dedupKey names an incident for the tools that fold repeats.
func dedupKey(in checkevent.Incident) string {
	return "sitewatch-incident-" + strconv.FormatInt(in.IncidentID, 10)
}

// severity is an incident's severity in PagerDuty's and Alertmanager's
// terms.
func severity(kind string) string {
	switch kind {
	case checkevent.KindDown:
		return "critical"
	case checkevent.KindStale:
		return "error"
	}
	return "warning"
}

// plain is summary without its emoji: "https://shop is DOWN (incident 7): ...".
func plain(eventType string, incident []byte) string {
	_, text, _ := strings.Cut(summary(eventType, incident), ": ")
	return text
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utfStart(s[n]) {
		n--
	}
	return s[:n]
}

func utfStart(b byte) bool { return b&0xC0 != 0x80 }

// providerRequest is the request that gives an incident event to one of
// the alerting tools: where it goes, its body and its headers.
func providerRequest(ch Channel, eventType string, incident []byte) (target string, body []byte, header http.Header, err error) {
	var in checkevent.Incident
	if err := json.Unmarshal(incident, &in); err != nil {
		return "", nil, nil, fmt.Errorf("reading the incident: %w", err)
	}
	resolved := eventType == checkevent.IncidentResolvedType
	header = http.Header{}
	var v any
	target = ch.URL
	switch ch.Kind {
	case PagerDuty:
		// https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
		ev := map[string]any{"routing_key": ch.Secret, "dedup_key": dedupKey(in), "event_action": "trigger"}
		if resolved {
			ev["event_action"] = "resolve"
		} else {
			ev["payload"] = map[string]any{
				"summary":        cut(plain(eventType, incident), 1024),
				"source":         in.URL,
				"severity":       severity(in.Kind),
				"timestamp":      in.OpenedAt.UTC().Format(time.RFC3339),
				"component":      in.URL,
				"group":          strings.Join(in.Regions, ","),
				"class":          in.Kind,
				"custom_details": json.RawMessage(incident),
			}
			ev["client"] = "sitewatch"
		}
		v = ev
	case Opsgenie:
		// https://docs.opsgenie.com/docs/alert-api
		header.Set("Authorization", "GenieKey "+ch.Secret)
		base := strings.TrimRight(ch.URL, "/")
		if resolved {
			target = base + "/v2/alerts/" + url.PathEscape(dedupKey(in)) + "/close?identifierType=alias"
			v = map[string]string{"source": "sitewatch", "user": "sitewatch", "note": "resolved: " + in.Resolution}
		} else {
			target = base + "/v2/alerts"
			priority := map[string]string{checkevent.KindDown: "P1", checkevent.KindStale: "P2"}[in.Kind]
			if priority == "" {
				priority = "P3"
			}
			v = map[string]any{
				"message":     cut(plain(eventType, incident), 130),
				"alias":       dedupKey(in),
				"description": cut(plain(eventType, incident), 15000),
				"source":      "sitewatch",
				"entity":      cut(in.URL, 512),
				"priority":    priority,
				"tags":        []string{"sitewatch", in.Kind},
				"details": map[string]string{"url": in.URL, "kind": in.Kind, "error_class": in.ErrorClass,
					"error": cut(in.Error, 1000), "regions": strings.Join(in.Regions, ","), "incident_id": strconv.FormatInt(in.IncidentID, 10)},
			}
		}
	case Alertmanager:
		// https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml (postAlerts)
		if ch.Secret != "" {
			header.Set("Authorization", "Bearer "+ch.Secret)
		}
		target = strings.TrimRight(ch.URL, "/") + "/api/v2/alerts"
		// Sent once, not re-sent like Prometheus' alerts: without endsAt
		// Alertmanager would resolve it after its resolve_timeout, so an
		// open incident's alert ends a year on, and the resolve ends it.
		ends := in.OpenedAt.Add(365 * 24 * time.Hour)
		if resolved && in.ResolvedAt != nil {
			ends = *in.ResolvedAt
		}
		v = []map[string]any{{
			"labels": map[string]string{"alertname": "SitewatchIncident", "kind": in.Kind, "site": in.URL,
				"incident": strconv.FormatInt(in.IncidentID, 10), "severity": severity(in.Kind), "source": "sitewatch"},
			"annotations": map[string]string{"summary": cut(plain(checkevent.IncidentOpenedType, incident), 1024),
				"description": cut(in.Error, 4096), "error_class": in.ErrorClass, "regions": strings.Join(in.Regions, ",")},
			"startsAt": in.OpenedAt.UTC().Format(time.RFC3339Nano),
			"endsAt":   ends.UTC().Format(time.RFC3339Nano),
		}}
	default:
		return "", nil, nil, fmt.Errorf("unknown kind %q", ch.Kind)
	}
	body, err = json.Marshal(v)
	if err != nil {
		return "", nil, nil, fmt.Errorf("encoding the notification: %w", err)
	}
	return target, body, header, nil
}
