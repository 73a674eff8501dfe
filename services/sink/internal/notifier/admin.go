package notifier

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

var (
	//go:embed list.sql
	listSQL string
	//go:embed requeue.sql
	requeueSQL string
)

// Delivery is one notification to one channel, as `sink deliveries list`
// shows it.
type Delivery struct {
	ID        int64
	CreatedAt time.Time
	Channel   string
	EventType string
	SiteID    int64
	URL       string
	Status    string // pending, delivered, failed (for good) or silenced
	Attempts  int
	LastError string
}

// Filter picks deliveries; empty fields pick any.
type Filter struct {
	Status  string
	Channel string
	Limit   int
}

// List returns the deliveries f picks, newest first.
func List(ctx context.Context, pool *pgxpool.Pool, f Filter) ([]Delivery, error) {
	rows, err := pool.Query(ctx, listSQL, nilIfEmpty(f.Status), nilIfEmpty(f.Channel), f.Limit)
	if err != nil {
		return nil, fmt.Errorf("listing deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Delivery])
	if err != nil {
		return nil, fmt.Errorf("listing deliveries: %w", err)
	}
	return out, nil
}

// Requeue makes failed deliveries pending again, due now with a fresh
// count of attempts: those with the given ids, or with all every failed
// one (of channel, when not empty). It returns the ids requeued.
func Requeue(ctx context.Context, pool *pgxpool.Pool, ids []int64, all bool, channel string) ([]int64, error) {
	if ids == nil {
		ids = []int64{}
	}
	rows, err := pool.Query(ctx, requeueSQL, ids, all, nilIfEmpty(channel))
	if err != nil {
		return nil, fmt.Errorf("requeueing deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("requeueing deliveries: %w", err)
	}
	return out, nil
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
