package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

var (
	//go:embed heartbeat_ensure.sql
	heartbeatEnsureSQL string
	//go:embed heartbeat_due.sql
	heartbeatDueSQL string
	//go:embed heartbeat_missed.sql
	heartbeatMissedSQL string
	//go:embed heartbeat_site.sql
	heartbeatSiteSQL string
	//go:embed heartbeat_lock.sql
	heartbeatLockSQL string
	//go:embed heartbeat_ping.sql
	heartbeatPingSQL string
)

// Signal is what a job reports on its heartbeat site.
type Signal struct {
	Start  bool // /start: a run begins; it must end within the grace
	Failed bool // /fail, or an exit status other than 0
	// ExitStatus is the status the job reported (/ping/<token>/<status>),
	// or -1.
	ExitStatus int
}

// Beat is one heartbeat check to write: a job's ping or failure, or a
// deadline it missed.
type Beat struct {
	Site   site.Site
	At     time.Time // the database's clock
	Signal Signal
	// Missed: no ping came by Deadline. LastPing is the last one, if any.
	Missed   bool
	Deadline time.Time
	LastPing *time.Time
	// Started is the /start of the run this ping or failure ends (or, of a
	// missed deadline, of the run that never ended), if any.
	Started *time.Time
}

// BeatMessage turns a beat into its outbox message; false drops the beat
// (it logged why), which never holds back the others.
type BeatMessage func(Beat) (outbox.Message, bool)

// Ping records sig for the enabled heartbeat site of token, and its check
// in the same transaction (a /start writes none): found is false for a
// token no enabled site has.
func (st *Store) Ping(ctx context.Context, token string, sig Signal, message BeatMessage) (found bool, err error) {
	err = pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		var graceMS int64
		s, err := scanSiteAnd(tx.QueryRow(ctx, heartbeatSiteSQL, site.HashPingToken(token)), &graceMS)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // no enabled heartbeat site has this token
		}
		if err != nil {
			return err
		}
		found = true
		b := Beat{Site: s, Signal: sig}
		if err := tx.QueryRow(ctx, heartbeatLockSQL, s.ID).Scan(&b.Started); err != nil {
			return err
		}
		next := s.Interval.Milliseconds() + graceMS // the next ping's deadline
		if sig.Start {
			next = graceMS // the run's end
		}
		if err := tx.QueryRow(ctx, heartbeatPingSQL, s.ID, next, sig.Start).Scan(&b.At); err != nil {
			return err
		}
		if sig.Start {
			return nil
		}
		if m, ok := message(b); ok {
			return outbox.Write(ctx, tx, m)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("recording a ping: %w", err)
	}
	return found, nil
}

// SweepHeartbeats writes a failed check for each heartbeat site of shards
// past its deadline, and moves its deadline an interval on, in one
// transaction: each missed deadline is written once, whichever replicas
// sweep the shard. It returns the number of checks written.
func (st *Store) SweepHeartbeats(ctx context.Context, shards []int16, message BeatMessage) (int, error) {
	if len(shards) == 0 {
		return 0, nil
	}
	written := 0
	err := pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		written = 0
		if _, err := tx.Exec(ctx, heartbeatEnsureSQL, shards); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, heartbeatDueSQL, shards)
		if err != nil {
			return err
		}
		var beats []Beat
		for rows.Next() {
			b := Beat{Missed: true, Signal: Signal{ExitStatus: -1}}
			b.Site, err = scanSiteAnd(rows, &b.Deadline, &b.Started, &b.LastPing, &b.At)
			if err != nil {
				rows.Close()
				return err
			}
			beats = append(beats, b)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(beats) == 0 {
			return nil
		}
		ids := make([]int64, len(beats))
		msgs := make([]outbox.Message, 0, len(beats))
		for i, b := range beats {
			ids[i] = b.Site.ID
			if m, ok := message(b); ok {
				msgs = append(msgs, m)
			}
		}
		if _, err := tx.Exec(ctx, heartbeatMissedSQL, ids); err != nil {
			return err
		}
		written = len(msgs)
		return outbox.Write(ctx, tx, msgs...)
	})
	if err != nil {
		return 0, fmt.Errorf("sweeping heartbeats: %w", err)
	}
	return written, nil
}
