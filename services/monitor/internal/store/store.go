// Package store is the monitor's SQL: the sites it checks, and the outbox
// rows announcing each check.
package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

var (
	//go:embed outbox_written.sql
	outboxWrittenSQL string
	//go:embed insert_site.sql
	insertSiteSQL string
	//go:embed list_sites.sql
	listSitesSQL string
	//go:embed lock_site.sql
	lockSiteSQL string
	//go:embed update_site.sql
	updateSiteSQL string
	//go:embed delete_site.sql
	deleteSiteSQL string
	//go:embed enabled_site_ids.sql
	enabledSiteIDsSQL string
	//go:embed region_id.sql
	regionIDSQL string
	//go:embed sites_oid.sql
	sitesOIDSQL string
	//go:embed list_incidents.sql
	listIncidentsSQL string
	//go:embed add_channel.sql
	addChannelSQL string
	//go:embed list_channels.sql
	listChannelsSQL string
	//go:embed lock_channel.sql
	lockChannelSQL string
	//go:embed update_channel.sql
	updateChannelSQL string
	//go:embed import_channel.sql
	importChannelSQL string
	//go:embed channel_deliveries.sql
	channelDeliveriesSQL string
	//go:embed remove_channel.sql
	removeChannelSQL string
	//go:embed set_site_channels.sql
	setSiteChannelsSQL string
	//go:embed site_channels.sql
	siteChannelsSQL string
	//go:embed clear_site_channels.sql
	clearSiteChannelsSQL string
	//go:embed add_silence.sql
	addSilenceSQL string
	//go:embed list_silences.sql
	listSilencesSQL string
	//go:embed remove_silence.sql
	removeSilenceSQL string
	//go:embed rotate_ping_token.sql
	rotatePingTokenSQL string
	//go:embed shard_weights.sql
	shardWeightsSQL string
)

// ErrNotFound is returned for a site id that does not exist.
var ErrNotFound = errors.New("not found")

// ChangeMargin is how far before the previous snapshot SiteChanges looks
// again, so a row written by a transaction that began before the snapshot
// and committed after it is still seen.
const ChangeMargin = 30 * time.Second

// Store reads and writes the monitor's tables.
type Store struct {
	pool   *pgxpool.Pool
	margin time.Duration
}

// New returns a Store using pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool, margin: ChangeMargin} }

// AddSites validates every site and inserts them all in one transaction:
// all or nothing. A validation error is a *site.InvalidError. Each
// heartbeat site gets a new ping token, returned in its PingToken and never
// again (the database keeps its hash).
func (st *Store) AddSites(ctx context.Context, sites []site.Site) ([]site.Site, error) {
	out := make([]site.Site, len(sites))
	for i, s := range sites {
		out[i] = s.WithDefaults()
		if err := out[i].Validate(); err != nil {
			return nil, &site.InvalidError{Index: i, URL: s.URL, Err: err}
		}
	}
	hashes := make([][]byte, len(out)) // of the heartbeat sites' new tokens
	for i := range out {
		if out[i].Kind() == site.KindHeartbeat {
			var err error
			if out[i].PingToken, hashes[i], err = site.NewPingToken(); err != nil {
				return nil, err
			}
		}
	}
	err := pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		for i := range out {
			s := &out[i]
			if err := tx.QueryRow(ctx, insertSiteSQL, append(siteArgs(*s), hashes[i])...).Scan(&s.ID, &s.Updated); err != nil {
				return fmt.Errorf("site %d (%s): %w", i+1, s.URL, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("adding sites: %w", err)
	}
	return out, nil
}

// Sites lists the sites, only the enabled ones if enabledOnly.
func (st *Store) Sites(ctx context.Context, enabledOnly bool) ([]site.Site, error) {
	out, err := querySites(ctx, st.pool, enabledOnly, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("listing sites: %w", err)
	}
	return out, nil
}

// Site returns the site with id.
func (st *Store) Site(ctx context.Context, id int64) (site.Site, error) {
	out, err := querySites(ctx, st.pool, false, nil, []int64{id})
	if err != nil {
		return site.Site{}, fmt.Errorf("reading site %d: %w", id, err)
	}
	if len(out) == 0 {
		return site.Site{}, fmt.Errorf("site %d: %w", id, ErrNotFound)
	}
	return out[0], nil
}

// SitesByID returns the enabled sites of scope among ids.
func (st *Store) SitesByID(ctx context.Context, ids []int64, scope site.Scope) ([]site.Site, error) {
	out, err := queryScope(ctx, st.pool, nil, ids, scope)
	if err != nil {
		return nil, fmt.Errorf("reading %d sites: %w", len(ids), err)
	}
	return out, nil
}

// SiteChanges returns, from one snapshot, the ids of every enabled site of
// scope and those of its enabled sites changed since since (all of them
// when since is zero), plus the snapshot's time to pass as since next
// time. Cheap when little changed: two index scans of the scope's shards.
func (st *Store) SiteChanges(ctx context.Context, since time.Time, scope site.Scope) (site.Changes, error) {
	ch := site.Changes{Enabled: []int64{}}
	if len(scope.Shards) == 0 {
		return ch, nil // no shards leased: nothing to check
	}
	err := pgx.BeginTxFunc(ctx, st.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, enabledSiteIDsSQL, scope.Region, scope.Shards).Scan(&ch.AsOf, &ch.Enabled); err != nil {
				return err
			}
			var after *time.Time
			if !since.IsZero() {
				t := since.Add(-st.margin)
				after = &t
			}
			var err error
			ch.Changed, err = queryScope(ctx, tx, after, nil, scope)
			return err
		})
	if err != nil {
		return site.Changes{}, fmt.Errorf("reading site changes: %w", err)
	}
	return ch, nil
}

// ShardWeights returns the checks per second of each of the site.Shards
// shards in region: what the region's replicas share out.
func (st *Store) ShardWeights(ctx context.Context, region string) ([]float64, error) {
	rows, err := st.pool.Query(ctx, shardWeightsSQL, region)
	if err != nil {
		return nil, fmt.Errorf("weighing the shards of region %s: %w", region, err)
	}
	w := make([]float64, site.Shards)
	var shard int16
	var perSecond float64
	_, err = pgx.ForEachRow(rows, []any{&shard, &perSecond}, func() error {
		if shard < 0 || int(shard) >= site.Shards {
			return fmt.Errorf("shard %d out of range", shard)
		}
		w[shard] = perSecond
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("weighing the shards of region %s: %w", region, err)
	}
	return w, nil
}

// Fleet is what a monitor replica needs to lease its shards: the sites
// table's oid (the leases' namespace) and its region's number.
type Fleet struct {
	SitesOID uint32
	RegionID int16
}

// Fleet registers region if it is new and returns the fleet's keys.
func (st *Store) Fleet(ctx context.Context, region string) (Fleet, error) {
	var f Fleet
	var oid int64
	if err := st.pool.QueryRow(ctx, sitesOIDSQL).Scan(&oid); err != nil {
		return f, fmt.Errorf("looking up the sites table: %w", err)
	}
	f.SitesOID = uint32(oid)
	if err := st.pool.QueryRow(ctx, regionIDSQL, region).Scan(&f.RegionID); err != nil {
		return f, fmt.Errorf("registering region %q: %w", region, err)
	}
	return f, nil
}

// Incident is one incident as the sink recorded it.
type Incident struct {
	ID         int64
	SiteID     int64
	URL        string
	Kind       string
	OpenedAt   time.Time
	ResolvedAt *time.Time
	ErrorClass string
	Error      string
	Regions    []string
	Resolution string
}

// Incidents lists the open incidents and those opened since since, newest
// first, at most limit.
func (st *Store) Incidents(ctx context.Context, since time.Time, limit int) ([]Incident, error) {
	rows, err := st.pool.Query(ctx, listIncidentsSQL, since, limit, nil)
	if err != nil {
		return nil, fmt.Errorf("listing incidents: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Incident])
	if err != nil {
		return nil, fmt.Errorf("listing incidents: %w", err)
	}
	return out, nil
}

// Incident returns the incident with id.
func (st *Store) Incident(ctx context.Context, id int64) (Incident, error) {
	rows, err := st.pool.Query(ctx, listIncidentsSQL, time.Time{}, 1, id)
	if err != nil {
		return Incident{}, fmt.Errorf("reading incident %d: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Incident])
	if err != nil {
		return Incident{}, fmt.Errorf("reading incident %d: %w", id, err)
	}
	if len(out) == 0 {
		return Incident{}, fmt.Errorf("incident %d: %w", id, ErrNotFound)
	}
	return out[0], nil
}

// Channel is a notification channel.
type Channel struct {
	Name      string
	Kind      string // notify.Webhook, Slack, Email, PagerDuty, Opsgenie, Alertmanager, Discord, Teams, Ntfy or Telegram
	URL       string
	Secret    string
	IsDefault bool  // used by sites that name no channels
	Sites     int64 // sites that name it
}

// AddChannel adds ch.
func (st *Store) AddChannel(ctx context.Context, ch Channel) error {
	var id int64
	if err := st.pool.QueryRow(ctx, addChannelSQL, ch.Name, ch.Kind, ch.URL, ch.Secret, ch.IsDefault).Scan(&id); err != nil {
		return fmt.Errorf("adding channel %s: %w", ch.Name, err)
	}
	return nil
}

// Channels lists the channels, or the one named name when it is not empty.
func (st *Store) Channels(ctx context.Context, name string) ([]Channel, error) {
	var only *string
	if name != "" {
		only = &name
	}
	rows, err := st.pool.Query(ctx, listChannelsSQL, only)
	if err != nil {
		return nil, fmt.Errorf("listing channels: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Channel])
	if err != nil {
		return nil, fmt.Errorf("listing channels: %w", err)
	}
	if name != "" && len(out) == 0 {
		return nil, fmt.Errorf("channel %s: %w", name, ErrNotFound)
	}
	return out, nil
}

// UpdateChannel applies change to the channel named name (its secret
// included) and writes the result, all in one transaction; an error from
// change writes nothing.
func (st *Store) UpdateChannel(ctx context.Context, name string, change func(*Channel) error) (Channel, error) {
	var ch Channel
	err := pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, lockChannelSQL, name)
		if err != nil {
			return fmt.Errorf("reading channel %s: %w", name, err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Channel])
		if err != nil {
			return fmt.Errorf("reading channel %s: %w", name, err)
		}
		if len(got) == 0 {
			return fmt.Errorf("channel %s: %w", name, ErrNotFound)
		}
		ch = got[0]
		if err := change(&ch); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, updateChannelSQL, name, ch.Kind, ch.URL, ch.Secret, ch.IsDefault); err != nil {
			return fmt.Errorf("updating channel %s: %w", name, err)
		}
		return nil
	})
	return ch, err
}

// ChannelImport is one channel of an import; KeepSecret leaves the secret
// of a channel that exists as it is.
type ChannelImport struct {
	Channel
	KeepSecret bool
}

// ImportChannels adds or replaces (by name) every channel, all or none.
func (st *Store) ImportChannels(ctx context.Context, chs []ChannelImport) (added, replaced int, err error) {
	err = pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		added, replaced = 0, 0
		for _, c := range chs {
			var isNew bool
			if err := tx.QueryRow(ctx, importChannelSQL, c.Name, c.Kind, c.URL, c.Secret, c.IsDefault, c.KeepSecret).Scan(&isNew); err != nil {
				return fmt.Errorf("importing channel %s: %w", c.Name, err)
			}
			if isNew {
				added++
			} else {
				replaced++
			}
		}
		return nil
	})
	return added, replaced, err
}

// Deliveries counts a channel's notifications by status.
type Deliveries struct {
	Pending, Delivered, Failed, Silenced int64
	LastFailedAt                         *time.Time // when the latest failed-for-good one was made
	LastError                            *string    // and why it failed
}

// ChannelDeliveries counts the deliveries of the channel named name.
func (st *Store) ChannelDeliveries(ctx context.Context, name string) (Deliveries, error) {
	var d Deliveries
	err := st.pool.QueryRow(ctx, channelDeliveriesSQL, name).Scan(&d.Pending, &d.Delivered, &d.Failed, &d.Silenced, &d.LastFailedAt, &d.LastError)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("channel %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("counting the deliveries of channel %s: %w", name, err)
	}
	return d, nil
}

// RemoveChannel deletes the channel named name (and its sites' links).
func (st *Store) RemoveChannel(ctx context.Context, name string) error {
	tag, err := st.pool.Exec(ctx, removeChannelSQL, name)
	if err != nil {
		return fmt.Errorf("removing channel %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("channel %s: %w", name, ErrNotFound)
	}
	return nil
}

// SetSiteChannels makes the site's channels exactly names (none: the
// default channels).
func (st *Store) SetSiteChannels(ctx context.Context, id int64, names []string) error {
	return pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, clearSiteChannelsSQL, id); err != nil {
			return fmt.Errorf("setting the channels of site %d: %w", id, err)
		}
		tag, err := tx.Exec(ctx, setSiteChannelsSQL, id, nonNil(names))
		if err != nil {
			return fmt.Errorf("setting the channels of site %d: %w", id, err)
		}
		if int(tag.RowsAffected()) != len(names) {
			return fmt.Errorf("channels %v of site %d: %w (add them with monitor channels add)", names, id, ErrNotFound)
		}
		return nil
	})
}

// SiteChannels returns the names of the site's channels.
func (st *Store) SiteChannels(ctx context.Context, id int64) ([]string, error) {
	var names []string
	if err := st.pool.QueryRow(ctx, siteChannelsSQL, id).Scan(&names); err != nil {
		return nil, fmt.Errorf("reading the channels of site %d: %w", id, err)
	}
	return names, nil
}

// Silence is a maintenance window of a site.
type Silence struct {
	ID       int64
	SiteID   int64
	URL      string
	StartsAt time.Time
	Until    time.Time
	Reason   string
}

// AddSilence silences site id's notifications from from until until and returns the
// silence's id.
func (st *Store) AddSilence(ctx context.Context, site int64, from, until time.Time, reason string) (int64, error) {
	var id int64
	if err := st.pool.QueryRow(ctx, addSilenceSQL, site, from, until, reason).Scan(&id); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign key: no such site
			return 0, fmt.Errorf("site %d: %w", site, ErrNotFound)
		}
		return 0, fmt.Errorf("adding a silence to site %d: %w", site, err)
	}
	return id, nil
}

// Silences lists the silences not over yet.
func (st *Store) Silences(ctx context.Context) ([]Silence, error) {
	rows, err := st.pool.Query(ctx, listSilencesSQL)
	if err != nil {
		return nil, fmt.Errorf("listing silences: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Silence])
	if err != nil {
		return nil, fmt.Errorf("listing silences: %w", err)
	}
	return out, nil
}

// RemoveSilence ends a silence now by deleting it.
func (st *Store) RemoveSilence(ctx context.Context, id int64) error {
	tag, err := st.pool.Exec(ctx, removeSilenceSQL, id)
	if err != nil {
		return fmt.Errorf("removing silence %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("silence %d: %w", id, ErrNotFound)
	}
	return nil
}

// UpdateSite applies change to the site with id, validates the result and
// writes it; updated_at moves, so a running monitor picks it up. Nothing is
// written when the result is invalid (a *site.InvalidError).
func (st *Store) UpdateSite(ctx context.Context, id int64, change func(*site.Site)) (site.Site, error) {
	var s site.Site
	err := pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, lockSiteSQL, id)
		if err != nil {
			return err
		}
		found, err := pgx.CollectRows(rows, scanSite)
		if err != nil {
			return err
		}
		if len(found) == 0 {
			return fmt.Errorf("site %d: %w", id, ErrNotFound)
		}
		s = found[0]
		wasHeartbeat := s.Kind() == site.KindHeartbeat
		change(&s)
		s.ID = id
		if err := s.Validate(); err != nil {
			return &site.InvalidError{Index: -1, URL: s.URL, Err: err}
		}
		if isHeartbeat := s.Kind() == site.KindHeartbeat; isHeartbeat != wasHeartbeat {
			return &site.InvalidError{Index: -1, URL: s.URL, Err: &site.FieldError{Field: "url", Value: s.URL,
				Msg: "a site cannot become or stop being a heartbeat (its ping token): remove it and add it again"}}
		}
		return tx.QueryRow(ctx, updateSiteSQL, append([]any{id}, siteArgs(s)...)...).Scan(&s.Updated)
	})
	if err != nil {
		return site.Site{}, fmt.Errorf("updating site %d: %w", id, err)
	}
	return s, nil
}

// ErrNotHeartbeat is returned for a ping token asked of a site that is not
// a heartbeat.
var ErrNotHeartbeat = errors.New("not a heartbeat site: only heartbeat:// sites have a ping token")

// RotatePingToken gives the heartbeat site id a new ping token and returns
// it; the old one stops working at once.
func (st *Store) RotatePingToken(ctx context.Context, id int64) (string, error) {
	token, hash, err := site.NewPingToken()
	if err != nil {
		return "", err
	}
	var heartbeat bool
	if err := st.pool.QueryRow(ctx, rotatePingTokenSQL, id, hash).Scan(&heartbeat); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return "", fmt.Errorf("site %d: %w", id, ErrNotFound)
		}
		return "", fmt.Errorf("giving site %d a new ping token: %w", id, err)
	}
	if !heartbeat {
		return "", fmt.Errorf("site %d: %w", id, ErrNotHeartbeat)
	}
	return token, nil
}

// RemoveSite deletes the site with id.
func (st *Store) RemoveSite(ctx context.Context, id int64) error {
	tag, err := st.pool.Exec(ctx, deleteSiteSQL, id)
	if err != nil {
		return fmt.Errorf("removing site %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("site %d: %w", id, ErrNotFound)
	}
	return nil
}

// WriteOutbox writes msgs in one transaction.
func (st *Store) WriteOutbox(ctx context.Context, msgs []outbox.Message) error {
	return st.writeOutbox(ctx, msgs, false)
}

// WriteOutboxAgain is WriteOutbox after an attempt that failed but may
// have committed all the same, its answer lost with the connection (a
// primary that crashed after its standby had the commit): messages the
// outbox already holds, by event id, are not written twice, which the
// outbox's unique event ids would refuse for ever.
func (st *Store) WriteOutboxAgain(ctx context.Context, msgs []outbox.Message) error {
	return st.writeOutbox(ctx, msgs, true)
}

func (st *Store) writeOutbox(ctx context.Context, msgs []outbox.Message, again bool) error {
	return pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		if again {
			ids := make([]string, len(msgs))
			for i, m := range msgs {
				ids[i] = m.EventID
			}
			rows, err := tx.Query(ctx, outboxWrittenSQL, ids)
			if err != nil {
				return fmt.Errorf("finding the messages written already: %w", err)
			}
			written, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("finding the messages written already: %w", err)
			}
			if len(written) > 0 {
				skip := make(map[string]bool, len(written))
				for _, id := range written {
					skip[id] = true
				}
				rest := make([]outbox.Message, 0, len(msgs)-len(written))
				for _, m := range msgs {
					if !skip[m.EventID] {
						rest = append(rest, m)
					}
				}
				msgs = rest
			}
			if len(msgs) == 0 {
				return nil
			}
		}
		return outbox.Write(ctx, tx, msgs...)
	})
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func querySites(ctx context.Context, q querier, enabledOnly bool, after *time.Time, ids []int64) ([]site.Site, error) {
	rows, err := q.Query(ctx, listSitesSQL, enabledOnly, after, ids, nil, nil)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanSite)
}

// queryScope reads the enabled sites of scope, changed after after or with
// one of ids when those are given.
func queryScope(ctx context.Context, q querier, after *time.Time, ids []int64, scope site.Scope) ([]site.Site, error) {
	if len(scope.Shards) == 0 {
		return nil, nil
	}
	rows, err := q.Query(ctx, listSitesSQL, true, after, ids, scope.Region, scope.Shards)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanSite)
}

// siteArgs are the parameters $1..$20 of insert_site.sql ($2.. of update_site.sql).
func siteArgs(s site.Site) []any {
	headers := s.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	return []any{s.URL, s.Method, headers, s.Expect, nonNil(s.MustMatch), nonNil(s.MustNotMatch),
		s.Interval.Milliseconds(), s.Timeout.Milliseconds(), s.Topic, nonNil(s.Regions), s.Enabled,
		s.FailureThreshold, s.SuccessThreshold, s.Quorum, s.TLSWarningDays, s.Name, s.Send, graceMS(s),
		nonNil(s.Conditions), s.DegradedAfter.Milliseconds()}
}

// graceMS is the grace_ms column of s: its URL's grace for a heartbeat
// site, NULL for the other kinds.
func graceMS(s site.Site) *int64 {
	if s.Kind() != site.KindHeartbeat {
		return nil
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return nil // Validate refused it already
	}
	ms := site.Grace(u).Milliseconds()
	return &ms
}

func scanSite(row pgx.CollectableRow) (site.Site, error) { return scanSiteAnd(row) }

// scanSiteAnd scans the columns of list_sites.sql and then into extra.
func scanSiteAnd(row pgx.Row, extra ...any) (site.Site, error) {
	var s site.Site
	var intervalMS, timeoutMS, degradedMS int64
	err := row.Scan(append([]any{&s.ID, &s.URL, &s.Method, &s.Headers, &s.Expect, &s.MustMatch, &s.MustNotMatch,
		&intervalMS, &timeoutMS, &s.Topic, &s.Regions, &s.Enabled, &s.Updated,
		&s.FailureThreshold, &s.SuccessThreshold, &s.Quorum, &s.TLSWarningDays, &s.Name, &s.Send,
		&s.Conditions, &degradedMS}, extra...)...)
	s.Interval, s.Timeout = time.Duration(intervalMS)*time.Millisecond, time.Duration(timeoutMS)*time.Millisecond
	s.DegradedAfter = time.Duration(degradedMS) * time.Millisecond
	if len(s.Conditions) == 0 {
		s.Conditions = nil
	}
	if len(s.Headers) == 0 {
		s.Headers = nil
	}
	if len(s.MustMatch) == 0 {
		s.MustMatch = nil
	}
	if len(s.MustNotMatch) == 0 {
		s.MustNotMatch = nil
	}
	if len(s.Regions) == 0 {
		s.Regions = nil
	}
	return s, err
}

// nonNil is s, or an empty slice for nil: an array, not NULL, in SQL.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
