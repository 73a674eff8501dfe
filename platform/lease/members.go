package lease

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

//go:embed members_status.sql
var membersStatusSQL string

// Member is a replica of a group alive now, as its lease connection shows
// in PostgreSQL.
type Member struct {
	PID         int32     // the lease connection's backend
	Application string    // its application_name ("" if hidden from this role)
	Client      string    // its client address, "local" over a Unix socket ("" if hidden)
	Since       time.Time // when the connection began (zero if hidden)
	Shards      []int     // the shards it holds, in order
}

// Querier runs a query: a connection, a pool or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Members lists the members of cfg's group alive now, by backend pid, and
// the shards each holds, from db's view of pg_locks: what an operator asks
// when rows wait (is any replica running? which holds this shard?).
func Members(ctx context.Context, db Querier, cfg Config) ([]Member, error) {
	rows, err := db.Query(ctx, membersStatusSQL, cfg.key1(), cfg.ShardBase, int64(cfg.ShardBase)+int64(cfg.Shards),
		cfg.MemberBase, int64(cfg.MemberBase)+int64(cfg.MaxMembers))
	if err != nil {
		return nil, fmt.Errorf("listing the members of %s: %w", cfg.Group, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Member, error) {
		var m Member
		var since *time.Time
		var shards []int64
		if err := row.Scan(&m.PID, &m.Application, &m.Client, &since, &shards); err != nil {
			return m, err
		}
		if since != nil {
			m.Since = *since
		}
		for _, s := range shards {
			m.Shards = append(m.Shards, int(s))
		}
		return m, nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the members of %s: %w", cfg.Group, err)
	}
	return out, nil
}
