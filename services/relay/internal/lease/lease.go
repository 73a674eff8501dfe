// Package lease shares an outbox table's lanes among relay replicas. Each
// replica holds, on one dedicated connection, a member-slot advisory lock
// (so replicas can count each other) and the advisory locks of the lanes
// it publishes; it takes or gives back lanes until each has its fair
// share. When a replica dies its connection closes and PostgreSQL frees
// its locks, so the others take its lanes over on their next rebalance.
//
// The same connection LISTENs on the table's notification channel and
// wakes the publishing workers when rows are committed.
package lease

import (
	"context"
	_ "embed"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/platform/retry"
)

// Lanes is the number of lanes of an outbox table; it matches the lane
// column's definition (hash & 63).
const Lanes = 64

const (
	memberBase = 1 << 16 // objid of member slot 0; lanes use 0..Lanes-1
	maxMembers = 1024
	// statementTimeout bounds the lease connection's statements; a
	// rebalance is a handful of them.
	statementTimeout = 10 * time.Second
)

var (
	//go:embed members.sql
	membersSQL string
	//go:embed held_lanes.sql
	heldLanesSQL string
	//go:embed try_lock.sql
	tryLockSQL string
	//go:embed unlock.sql
	unlockSQL string
)

// Config says which table to lease lanes of.
type Config struct {
	DatabaseURL string
	TableOID    uint32
	Channel     string        // notification channel of the table
	Rebalance   time.Duration // how often shares are checked
}

// Coordinator holds this replica's lanes.
type Coordinator struct {
	cfg    Config
	logger *zap.Logger

	// Workers hold mu for reading while a batch is in flight; the
	// coordinator holds it for writing to give a lane back, so a lane is
	// never released in the middle of a batch.
	mu    sync.RWMutex
	owned [Lanes]bool
	count atomic.Int32

	wakeMu sync.Mutex
	wakers []chan struct{}
}

// New returns a Coordinator; call Run to start leasing.
func New(cfg Config, logger *zap.Logger) *Coordinator {
	return &Coordinator{cfg: cfg, logger: logger}
}

// Subscribe returns a channel that receives a value when rows were
// committed to the table (or may have been: after a reconnect).
func (c *Coordinator) Subscribe() <-chan struct{} {
	c.wakeMu.Lock()
	defer c.wakeMu.Unlock()
	ch := make(chan struct{}, 1)
	c.wakers = append(c.wakers, ch)
	return ch
}

func (c *Coordinator) wakeAll() {
	c.wakeMu.Lock()
	defer c.wakeMu.Unlock()
	for _, ch := range c.wakers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Acquire returns the owned lanes that fall to worker (lane % workers ==
// worker) and holds them until release is called: call it when the batch
// is committed or rolled back.
func (c *Coordinator) Acquire(worker, workers int) (lanes []int16, release func()) {
	c.mu.RLock()
	for l := range Lanes {
		if c.owned[l] && l%workers == worker {
			lanes = append(lanes, int16(l))
		}
	}
	return lanes, c.mu.RUnlock
}

// Owned is the number of lanes this replica holds.
func (c *Coordinator) Owned() int { return int(c.count.Load()) }

// reconnect paces reconnections of the lease connection.
var reconnect = retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2}

// Run leases lanes until ctx ends, reconnecting when the connection is
// lost (its lanes are then given up at once: PostgreSQL freed them).
func (c *Coordinator) Run(ctx context.Context) {
	backoff := retry.NewBackoff(reconnect)
	for {
		joined, err := c.session(ctx)
		c.dropAll()
		if ctx.Err() != nil {
			return
		}
		if joined {
			backoff.Reset() // a session that worked starts the waits afresh
		}
		wait := backoff.Next()
		c.logger.Warn("lane lease connection lost; reconnecting", zap.Error(err), zap.Duration("retry_in", wait))
		if !retry.Sleep(ctx, wait) {
			return
		}
	}
}

// session holds one lease connection until it fails or ctx ends; joined
// reports whether it got as far as joining the group.
func (c *Coordinator) session(ctx context.Context) (joined bool, err error) {
	cfg, err := pgx.ParseConfig(c.cfg.DatabaseURL)
	if err != nil {
		return false, fmt.Errorf("parsing database URL: %w", err)
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "sitewatch-relay-lease"
	}
	// Interrupt a wait for notifications with a socket deadline, not a
	// cancel request, which could hit the next query on this connection.
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: pc.Conn()}
	}
	cctx, cancel := context.WithTimeout(ctx, statementTimeout)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return false, fmt.Errorf("connecting for lane leases: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }() // frees every lock of this session

	slot, err := c.joinMembers(ctx, conn)
	if err != nil {
		return false, err
	}
	lctx, cancel := context.WithTimeout(ctx, statementTimeout)
	_, err = conn.Exec(lctx, "LISTEN "+pgx.Identifier{c.cfg.Channel}.Sanitize())
	cancel()
	if err != nil {
		return false, fmt.Errorf("listening on %s: %w", c.cfg.Channel, err)
	}
	c.logger.Info("joined relay group", zap.Int("member_slot", slot), zap.String("channel", c.cfg.Channel))
	c.wakeAll() // rows may have been committed while we were away
	for {
		err := c.rebalance(ctx, conn)
		if ctx.Err() != nil {
			return true, nil
		}
		if err != nil {
			return true, err
		}
		deadline := time.Now().Add(c.cfg.Rebalance)
		for {
			wctx, cancel := context.WithDeadline(ctx, deadline)
			_, err := conn.WaitForNotification(wctx)
			cancel()
			if ctx.Err() != nil {
				return true, nil
			}
			if err != nil {
				if time.Now().Before(deadline) && !pgconn.Timeout(err) {
					return true, fmt.Errorf("waiting for notifications: %w", err)
				}
				break // time to rebalance
			}
			c.wakeAll()
		}
	}
}

func (c *Coordinator) key1() int32 { return int32(c.cfg.TableOID) }

// tryLock takes the advisory lock (key1, key2) if it is free.
func (c *Coordinator) tryLock(ctx context.Context, conn *pgx.Conn, key2 int) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	var ok bool
	err := conn.QueryRow(ctx, tryLockSQL, c.key1(), key2).Scan(&ok)
	return ok, err
}

func (c *Coordinator) joinMembers(ctx context.Context, conn *pgx.Conn) (int, error) {
	for slot := range maxMembers {
		ok, err := c.tryLock(ctx, conn, memberBase+slot)
		if err != nil {
			return 0, fmt.Errorf("joining relay group: %w", err)
		}
		if ok {
			return slot, nil
		}
	}
	return 0, fmt.Errorf("joining relay group: all %d member slots taken", maxMembers)
}

// rebalance moves this replica's share towards ceil(Lanes / replicas).
func (c *Coordinator) rebalance(ctx context.Context, conn *pgx.Conn) error {
	classid := int64(c.cfg.TableOID)
	var members int
	qctx, cancel := context.WithTimeout(ctx, statementTimeout)
	err := conn.QueryRow(qctx, membersSQL, classid, memberBase).Scan(&members)
	cancel()
	if err != nil {
		return fmt.Errorf("counting relays: %w", err)
	}
	fair := (Lanes + max(members, 1) - 1) / max(members, 1)
	mine := int(c.count.Load())

	if mine > fair {
		c.mu.Lock() // waits for batches in flight
		defer c.mu.Unlock()
		for l := Lanes - 1; l >= 0 && mine > fair; l-- {
			if !c.owned[l] {
				continue
			}
			uctx, cancel := context.WithTimeout(ctx, statementTimeout)
			_, err := conn.Exec(uctx, unlockSQL, c.key1(), l)
			cancel()
			if err != nil {
				return fmt.Errorf("releasing lane %d: %w", l, err)
			}
			c.owned[l] = false
			mine--
		}
		c.count.Store(int32(mine))
		c.logger.Info("gave lanes back", zap.Int("owned", mine), zap.Int("relays", members))
		return nil
	}
	if mine == fair {
		return nil
	}

	qctx, cancel = context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	rows, err := conn.Query(qctx, heldLanesSQL, classid, memberBase)
	if err != nil {
		return fmt.Errorf("listing leased lanes: %w", err)
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("listing leased lanes: %w", err)
	}
	taken := map[int]bool{}
	for _, l := range held {
		taken[int(l)] = true
	}
	before := mine
	for _, l := range rand.Perm(Lanes) { // random order: replicas starting together collide less
		if mine >= fair {
			break
		}
		if taken[l] {
			continue
		}
		ok, err := c.tryLock(ctx, conn, l)
		if err != nil {
			return fmt.Errorf("leasing lane %d: %w", l, err)
		}
		if !ok {
			continue
		}
		c.mu.Lock()
		c.owned[l] = true
		c.mu.Unlock()
		mine++
	}
	c.count.Store(int32(mine))
	if mine > before {
		c.logger.Info("took lanes", zap.Int("new", mine-before), zap.Int("owned", mine), zap.Int("relays", members))
		c.wakeAll()
	}
	return nil
}

func (c *Coordinator) dropAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.owned = [Lanes]bool{}
	c.count.Store(0)
}
