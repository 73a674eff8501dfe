package checkevent

import "time"

// The incident contract: the sink writes one event when an incident opens
// and one when it is resolved, to IncidentTopic, keyed by site id.
const (
	IncidentTopic         = "sitewatch.incidents"
	IncidentOpenedType    = "io.sitewatch.incident.opened"
	IncidentResolvedType  = "io.sitewatch.incident.resolved"
	IncidentSource        = "/sitewatch/sink"
	IncidentSchemaVersion = 1
)

// Incident kinds.
const (
	KindDown    = "down"    // a quorum of the site's regions says it is down
	KindStale   = "stale"   // no check from any region for 3 intervals (at least 30 s)
	KindWarning = "warning" // the TLS certificate expires within the site's threshold
)

// Incident is the payload of an incident event.
type Incident struct {
	SchemaVersion int        `json:"schema_version"`
	EventID       string     `json:"event_id"`
	IncidentID    int64      `json:"incident_id"`
	SiteID        int64      `json:"site_id"`
	URL           string     `json:"url"`
	Kind          string     `json:"kind"`
	State         string     `json:"state"` // opened or resolved
	OpenedAt      time.Time  `json:"opened_at"`
	ResolvedAt    *time.Time `json:"resolved_at,omitempty"`
	ErrorClass    string     `json:"error_class,omitempty"` // of the checks that tripped it
	Error         string     `json:"error,omitempty"`
	Regions       []string   `json:"regions,omitempty"` // the regions that agreed
	Resolution    string     `json:"resolution,omitempty"`
}
