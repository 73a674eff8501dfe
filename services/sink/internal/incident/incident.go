// Package incident turns checks into incidents. It runs in the sink, where
// every region's checks of a site meet (one partition per site, in order
// per region), inside the transaction that stores the checks: a state
// change writes its incidents row and the outbox row announcing it in that
// same transaction, so an incident is never announced without being
// recorded, nor recorded without being announced.
//
// Per region a site is down after failure_threshold consecutive failed
// checks and up again after success_threshold passing ones. The site as a
// whole is down when a quorum of its regions says so (a majority unless
// the site sets one); its regions are the site's own list, or the regions
// that checked it within the last 3 intervals. Only checks stored for the
// first time are applied (a re-delivered check changes nothing), and only
// a check newer than the last one applied for its site and region moves
// the state (a late, older one is stored but ignored).
package incident

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/checkevent"
)

var (
	//go:embed sites.sql
	sitesSQL string
	//go:embed region_states.sql
	regionStatesSQL string
	//go:embed open_incidents.sql
	openIncidentsSQL string
	//go:embed save_region_states.sql
	saveRegionStatesSQL string
	//go:embed save_site_states.sql
	saveSiteStatesSQL string
	//go:embed open_incident.sql
	openIncidentSQL string
	//go:embed resolve_incident.sql
	resolveIncidentSQL string
	//go:embed open_counts.sql
	openCountsSQL string
	//go:embed stale_sites.sql
	staleSitesSQL string
	//go:embed orphaned_incidents.sql
	orphanedIncidentsSQL string
	//go:embed sweep_lock.sql
	sweepLockSQL string
	//go:embed judge.sql
	judgeSQL string
	//go:embed leave.sql
	leaveSQL string
)

// staleIntervals is how many intervals without a check make a site stale,
// and how far back a region's check still counts it among the site's regions.
const staleIntervals = 3

// staleFloor is the shortest silence that makes a site stale, whatever its
// interval: longer than a monitor's reload of the sites and a shard lease's
// move to another replica, so neither opens a stale incident on its own.
const staleFloor = 30 * time.Second

// Check is what the engine needs of one stored check.
type Check struct {
	SiteID     int64
	Region     string
	CheckedAt  time.Time
	Failed     bool
	ErrorClass string
	Error      string
	TLSExpiry  *time.Time
	Degraded   bool // passed, but slower than the site's limit
}

// Change is an incident opened or resolved.
type Change struct {
	IncidentID int64
	SiteID     int64
	Kind       string
	Opened     bool // false: resolved
}

type site struct {
	id                 int64
	url                string
	enabled            bool
	interval           time.Duration
	failures, passes   int
	quorum             int
	tlsWarning         time.Duration
	regions            []string
	open               map[string]int64 // kind → open incident id
	regionStates       map[string]*regionState
	state              string
	stateChanged       bool
	lastError          [2]string // class, text of the latest failed check
	lastCheckedAtBatch time.Time
}

type regionState struct {
	state            string
	failures, passes int
	lastCheckedAt    time.Time
	errorClass, err  string
	degraded         bool // the newest check passed too slowly
	dirty            bool
}

// Apply applies checks, stored for the first time in tx, and returns the
// incidents it opened or resolved.
func Apply(ctx context.Context, tx pgx.Tx, topic string, checks []Check) ([]Change, error) {
	if len(checks) == 0 {
		return nil, nil
	}
	sites, err := load(ctx, tx, checks)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(checks, func(i, j int) bool { return checks[i].CheckedAt.Before(checks[j].CheckedAt) })
	var changes []Change
	for _, c := range checks {
		s, ok := sites[c.SiteID]
		if !ok || !s.enabled {
			continue // removed or disabled: stored, but no state
		}
		rs := s.regionStates[c.Region]
		if rs == nil {
			rs = &regionState{state: "up"}
			s.regionStates[c.Region] = rs
		} else if !c.CheckedAt.After(rs.lastCheckedAt) {
			continue // a late, older check: stored, never moves the state
		}
		rs.dirty, rs.lastCheckedAt, rs.degraded = true, c.CheckedAt, c.Degraded && !c.Failed
		if c.Failed {
			rs.failures, rs.passes, rs.errorClass, rs.err = rs.failures+1, 0, c.ErrorClass, c.Error
			if rs.state == "up" && rs.failures >= s.failures {
				rs.state = "down"
			}
			s.lastError = [2]string{c.ErrorClass, c.Error}
		} else {
			rs.passes, rs.failures, rs.errorClass, rs.err = rs.passes+1, 0, "", ""
			if rs.state == "down" && rs.passes >= s.passes {
				rs.state = "up"
			}
		}
		more, err := s.evaluate(ctx, tx, topic, c)
		if err != nil {
			return nil, err
		}
		changes = append(changes, more...)
	}
	return changes, save(ctx, tx, sites)
}

// evaluate moves the site as a whole after check c and opens or resolves
// its incidents.
func (s *site) evaluate(ctx context.Context, tx pgx.Tx, topic string, c Check) ([]Change, error) {
	var changes []Change
	change := func(ch Change, err error) error {
		if err == nil && ch.IncidentID != 0 {
			changes = append(changes, ch)
		}
		return err
	}
	// Any check ends a stale incident.
	if id := s.open[checkevent.KindStale]; id != 0 {
		if err := change(resolve(ctx, tx, topic, id, c.CheckedAt, "checks_resumed")); err != nil {
			return nil, err
		}
		delete(s.open, checkevent.KindStale)
	}
	// The certificate is the same from everywhere: one region's check decides.
	if c.TLSExpiry != nil && s.tlsWarning > 0 {
		soon := c.TLSExpiry.Sub(c.CheckedAt) < s.tlsWarning
		switch id := s.open[checkevent.KindWarning]; {
		case soon && id == 0:
			msg := fmt.Sprintf("TLS certificate expires %s", c.TLSExpiry.UTC().Format(time.RFC3339))
			ch, err := open(ctx, tx, topic, s, checkevent.KindWarning, c.CheckedAt, "tls_expiry", msg, []string{c.Region})
			if err := change(ch, err); err != nil {
				return nil, err
			}
			if ch.IncidentID != 0 {
				s.open[checkevent.KindWarning] = ch.IncidentID
			}
		case !soon && id != 0:
			if err := change(resolve(ctx, tx, topic, id, c.CheckedAt, "renewed")); err != nil {
				return nil, err
			}
			delete(s.open, checkevent.KindWarning)
		}
	}

	var considered, down []string
	slow := false // a considered region's newest check passed too slowly
	for region, rs := range s.regionStates {
		listed := len(s.regions) == 0 || slices.Contains(s.regions, region)
		recent := !rs.lastCheckedAt.Before(c.CheckedAt.Add(-staleIntervals * s.interval))
		if listed && (len(s.regions) > 0 || recent) {
			considered = append(considered, region)
			if rs.state == "down" {
				down = append(down, region)
			}
			slow = slow || rs.degraded
		}
	}
	if len(s.regions) > 0 {
		considered = s.regions
	}
	slices.Sort(down)
	quorum := s.quorum
	if quorum == 0 {
		quorum = len(considered)/2 + 1
	}
	state := "up"
	switch {
	case len(down) >= quorum:
		state = "down"
	case len(down) > 0 || s.open[checkevent.KindWarning] != 0 || slow:
		state = "degraded"
	}
	if state != s.state {
		s.state, s.stateChanged, s.lastCheckedAtBatch = state, true, c.CheckedAt
	}
	switch id := s.open[checkevent.KindDown]; {
	case state == "down" && id == 0:
		class, text := s.lastError[0], s.lastError[1]
		if class == "" && len(down) > 0 { // the tripping failures came in an earlier batch
			class, text = s.regionStates[down[0]].errorClass, s.regionStates[down[0]].err
		}
		ch, err := open(ctx, tx, topic, s, checkevent.KindDown, c.CheckedAt, class, text, down)
		if err := change(ch, err); err != nil {
			return nil, err
		}
		if ch.IncidentID != 0 {
			s.open[checkevent.KindDown] = ch.IncidentID
		}
	case state != "down" && id != 0:
		if err := change(resolve(ctx, tx, topic, id, c.CheckedAt, "recovered")); err != nil {
			return nil, err
		}
		delete(s.open, checkevent.KindDown)
	}
	return changes, nil
}

func load(ctx context.Context, tx pgx.Tx, checks []Check) (map[int64]*site, error) {
	ids := make([]int64, 0, len(checks))
	for _, c := range checks {
		ids = append(ids, c.SiteID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	sites := map[int64]*site{}
	rows, err := tx.Query(ctx, sitesSQL, ids)
	if err != nil {
		return nil, fmt.Errorf("reading the settings of %d sites: %w", len(ids), err)
	}
	for rows.Next() {
		s := &site{open: map[string]int64{}, regionStates: map[string]*regionState{}}
		var intervalMS, failures, passes, quorum, tlsDays int
		if err := rows.Scan(&s.id, &s.url, &s.enabled, &intervalMS, &failures, &passes, &quorum, &tlsDays, &s.regions, &s.state); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading site settings: %w", err)
		}
		s.interval, s.failures, s.passes, s.quorum = time.Duration(intervalMS)*time.Millisecond, failures, passes, quorum
		s.tlsWarning = time.Duration(tlsDays) * 24 * time.Hour
		sites[s.id] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading site settings: %w", err)
	}
	rows, err = tx.Query(ctx, regionStatesSQL, ids)
	if err != nil {
		return nil, fmt.Errorf("reading region states: %w", err)
	}
	for rows.Next() {
		var id int64
		var region string
		rs := &regionState{}
		if err := rows.Scan(&id, &region, &rs.state, &rs.failures, &rs.passes, &rs.lastCheckedAt, &rs.errorClass, &rs.err, &rs.degraded); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading region states: %w", err)
		}
		if s := sites[id]; s != nil {
			s.regionStates[region] = rs
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading region states: %w", err)
	}
	rows, err = tx.Query(ctx, openIncidentsSQL, ids)
	if err != nil {
		return nil, fmt.Errorf("reading open incidents: %w", err)
	}
	for rows.Next() {
		var id, siteID int64
		var kind string
		var opened time.Time
		if err := rows.Scan(&id, &siteID, &kind, &opened); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading open incidents: %w", err)
		}
		if s := sites[siteID]; s != nil {
			s.open[kind] = id
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading open incidents: %w", err)
	}
	for _, s := range sites {
		// A site whose state was never written: as its open incidents say.
		if s.state == "" {
			s.state = "up"
			if s.open[checkevent.KindDown] != 0 {
				s.state = "down"
			}
		}
	}
	return sites, nil
}

func save(ctx context.Context, tx pgx.Tx, sites map[int64]*site) error {
	var (
		ids, stateIDs          []int64
		regions, states        []string
		failures, passes       []int32
		checked, since         []time.Time
		classes, errs, sStates []string
		slow                   []bool
	)
	for _, s := range sites {
		for region, rs := range s.regionStates {
			if !rs.dirty {
				continue
			}
			ids, regions, states = append(ids, s.id), append(regions, region), append(states, rs.state)
			failures, passes = append(failures, int32(rs.failures)), append(passes, int32(rs.passes))
			checked, classes, errs = append(checked, rs.lastCheckedAt), append(classes, rs.errorClass), append(errs, rs.err)
			slow = append(slow, rs.degraded)
		}
		if s.stateChanged {
			stateIDs, sStates, since = append(stateIDs, s.id), append(sStates, s.state), append(since, s.lastCheckedAtBatch)
		}
	}
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, saveRegionStatesSQL, ids, regions, states, failures, passes, checked, classes, errs, slow); err != nil {
			return fmt.Errorf("saving %d region states: %w", len(ids), err)
		}
	}
	if len(stateIDs) > 0 {
		if _, err := tx.Exec(ctx, saveSiteStatesSQL, stateIDs, sStates, since); err != nil {
			return fmt.Errorf("saving %d site states: %w", len(stateIDs), err)
		}
	}
	return nil
}

// open records an incident and its outbox row; IncidentID is 0 if one of
// its kind was open already.
func open(ctx context.Context, tx pgx.Tx, topic string, s *site, kind string, at time.Time, class, text string, regions []string) (Change, error) {
	if regions == nil {
		regions = []string{}
	}
	var id int64
	err := tx.QueryRow(ctx, openIncidentSQL, s.id, s.url, kind, at, class, text, regions).Scan(&id)
	if err == pgx.ErrNoRows {
		return Change{}, nil
	}
	if err != nil {
		return Change{}, fmt.Errorf("opening a %s incident of site %d: %w", kind, s.id, err)
	}
	ev := checkevent.Incident{IncidentID: id, SiteID: s.id, URL: s.url, Kind: kind, State: "opened", OpenedAt: at,
		ErrorClass: class, Error: text, Regions: regions}
	if err := announce(ctx, tx, topic, ev); err != nil {
		return Change{}, err
	}
	return Change{IncidentID: id, SiteID: s.id, Kind: kind, Opened: true}, nil
}

// resolve resolves an open incident and writes its outbox row.
func resolve(ctx context.Context, tx pgx.Tx, topic string, id int64, at time.Time, resolution string) (Change, error) {
	ev := checkevent.Incident{IncidentID: id, State: "resolved", ResolvedAt: &at, Resolution: resolution}
	err := tx.QueryRow(ctx, resolveIncidentSQL, id, at, resolution).Scan(&ev.SiteID, &ev.URL, &ev.Kind, &ev.OpenedAt,
		&ev.ErrorClass, &ev.Error, &ev.Regions)
	if err == pgx.ErrNoRows {
		return Change{}, nil // resolved meanwhile
	}
	if err != nil {
		return Change{}, fmt.Errorf("resolving incident %d: %w", id, err)
	}
	if err := announce(ctx, tx, topic, ev); err != nil {
		return Change{}, err
	}
	return Change{IncidentID: id, SiteID: ev.SiteID, Kind: ev.Kind}, nil
}

// announce writes the incident event to the outbox, in the incident's
// transaction.
func announce(ctx context.Context, tx pgx.Tx, topic string, ev checkevent.Incident) error {
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("generating event id: %w", err)
	}
	ev.SchemaVersion, ev.EventID = checkevent.IncidentSchemaVersion, id.String()
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encoding incident event: %w", err)
	}
	typ := checkevent.IncidentOpenedType
	if ev.State == "resolved" {
		typ = checkevent.IncidentResolvedType
	}
	return outbox.Write(ctx, tx, outbox.Message{EventID: ev.EventID, Topic: topic,
		Key: []byte(strconv.FormatInt(ev.SiteID, 10)), Payload: payload,
		Headers: map[string]string{"ce_type": typ, "ce_source": checkevent.IncidentSource, "content-type": checkevent.ContentType}})
}

// Judge records whether sink replica instance has read its partitions up
// to their recent ends (caughtUp; behind messages left) and reports
// whether stale may be judged: only when it and every other replica that
// reported within fresh are caught up, for a site's checks may wait on
// any replica's partitions. lagging names the replicas that are not.
func Judge(ctx context.Context, db interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, instance string, caughtUp bool, behind int64, fresh time.Duration) (ok bool, lagging []string, err error) {
	if err := db.QueryRow(ctx, judgeSQL, instance, caughtUp, max(behind, 0), fresh.Seconds()).Scan(&ok, &lagging); err != nil {
		return false, nil, fmt.Errorf("recording sink replica %s's progress: %w", instance, err)
	}
	return ok, lagging, nil
}

// Leave removes sink replica instance's report, at shutdown: its
// partitions go to the others.
func Leave(ctx context.Context, db interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}, instance string) error {
	if _, err := db.Exec(ctx, leaveSQL, instance); err != nil {
		return fmt.Errorf("removing sink replica %s's progress: %w", instance, err)
	}
	return nil
}

// Sweep resolves the open incidents of removed or disabled sites and, with
// stale, opens stale incidents for sites no region has checked for 3
// intervals: only a sink that has read its topic to the end may judge
// that (one catching up would call every site stale). One sink replica
// sweeps at a time; the others find the lock taken.
func Sweep(ctx context.Context, db interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}, topic string, now time.Time, stale bool) ([]Change, error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("beginning incident sweep: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var mine bool
	if err := tx.QueryRow(ctx, sweepLockSQL).Scan(&mine); err != nil {
		return nil, fmt.Errorf("taking the sweep lock: %w", err)
	}
	if !mine {
		return nil, nil
	}
	changes, err := openStale(ctx, tx, topic, now, stale)
	if err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, orphanedIncidentsSQL)
	if err != nil {
		return nil, fmt.Errorf("finding incidents of removed sites: %w", err)
	}
	type orphan struct {
		id  int64
		why string
	}
	var orphans []orphan
	for rows.Next() {
		var o orphan
		if err := rows.Scan(&o.id, &o.why); err != nil {
			rows.Close()
			return nil, fmt.Errorf("finding incidents of removed sites: %w", err)
		}
		orphans = append(orphans, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("finding incidents of removed sites: %w", err)
	}
	for _, o := range orphans {
		ch, err := resolve(ctx, tx, topic, o.id, now, o.why)
		if err != nil {
			return nil, err
		}
		if ch.IncidentID != 0 {
			changes = append(changes, ch)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("committing incident sweep: %w", err)
	}
	return changes, nil
}

// openStale opens the stale incidents a sweep finds, when judge is set.
func openStale(ctx context.Context, tx pgx.Tx, topic string, now time.Time, judge bool) ([]Change, error) {
	if !judge {
		return nil, nil
	}
	rows, err := tx.Query(ctx, staleSitesSQL, staleFloor.Seconds())
	if err != nil {
		return nil, fmt.Errorf("finding stale sites: %w", err)
	}
	var stale []*site
	for rows.Next() {
		s := &site{}
		if err := rows.Scan(&s.id, &s.url); err != nil {
			rows.Close()
			return nil, fmt.Errorf("finding stale sites: %w", err)
		}
		stale = append(stale, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("finding stale sites: %w", err)
	}
	var changes []Change
	for _, s := range stale {
		ch, err := open(ctx, tx, topic, s, checkevent.KindStale, now, "stale",
			fmt.Sprintf("no check from any region for %d intervals (at least %s)", staleIntervals, staleFloor), nil)
		if err != nil {
			return nil, err
		}
		if ch.IncidentID != 0 {
			changes = append(changes, ch)
		}
	}
	return changes, nil
}

// Kinds are the kinds of incident.
var Kinds = []string{checkevent.KindDown, checkevent.KindStale, checkevent.KindWarning}

// OpenCounts counts the open incidents of each kind (every kind present).
func OpenCounts(ctx context.Context, db interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}) (map[string]int64, error) {
	out := map[string]int64{}
	for _, k := range Kinds {
		out[k] = 0
	}
	rows, err := db.Query(ctx, openCountsSQL)
	if err != nil {
		return nil, fmt.Errorf("counting open incidents: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind string
		var n int64
		if err := rows.Scan(&kind, &n); err != nil {
			return nil, fmt.Errorf("counting open incidents: %w", err)
		}
		out[kind] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("counting open incidents: %w", err)
	}
	return out, nil
}
