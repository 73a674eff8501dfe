// Package lease shares a fixed set of shards among the replicas of a
// group, with PostgreSQL advisory locks: the relay's lanes of an outbox
// table, the monitor's shards of the sites of a region.
//
// Each replica holds, on one dedicated connection, a member-slot lock (so
// replicas can count each other) and the locks of the shards it owns; it
// takes or gives back shards until each has its fair share,
// ceil(shards / members) — or, when the group weighs its shards (the
// monitor's: a shard's checks per second), its fair share of the weight
// within Tolerance (weighted.go). When a replica dies its connection closes and
// PostgreSQL frees its locks, so the others take its shards on their next
// rebalance. A replica whose host vanishes without closing its connection
// (no FIN, no RST) is found out by TCP keepalives and a user timeout set on
// both ends of the lease connection, within seconds instead of TCP's two
// hours; the replica itself gives up its shards when a lease statement
// times out.
//
// Lock keys are (Key1, Key2): Key1 names the group's namespace (the OID of
// the table whose rows are shared), Key2 a shard (ShardBase + shard) or a
// member slot (MemberBase + slot). Two groups never share a lock as long
// as their Key1 differ, or their Key2 ranges do not overlap.
//
// The same connection can LISTEN on a notification channel and wake
// subscribers when rows are committed.
package lease

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/platform/retry"
)

var (
	//go:embed members.sql
	membersSQL string
	//go:embed keepalives.sql
	keepalivesSQL string
	//go:embed held_shards.sql
	heldShardsSQL string
	//go:embed try_lock.sql
	tryLockSQL string
	//go:embed unlock.sql
	unlockSQL string
)

// Config describes a group and how its lease connection behaves.
type Config struct {
	DatabaseURL string
	AppName     string // application_name of the lease connection, unless the URL sets one
	Group       string // what is shared, for logs: "lanes of public.outbox"

	Key1       int32 // the group's namespace, e.g. the OID of the shared table
	ShardBase  int32 // Key2 of shard 0
	Shards     int   // shards 0..Shards-1
	MemberBase int32 // Key2 of member slot 0
	MaxMembers int

	Channel string // LISTEN channel whose notifications wake subscribers; "" for none

	// Weigh, if set, returns what each of the Shards costs (the monitor's:
	// the checks per second of a shard's sites): members then even out the
	// weight they hold rather than their count of shards. It is called
	// every 10 rebalances at most.
	Weigh func(ctx context.Context) ([]float64, error)

	Rebalance        time.Duration // how often shares are checked
	StatementTimeout time.Duration // deadline of each lease statement
	// DeadPeer is about how long a vanished peer goes unnoticed: the TCP
	// keepalive idle time, probe interval × 3 and user timeout of both ends
	// of the lease connection are derived from it.
	DeadPeer time.Duration
}

// Validate reports a config that cannot work; it does not change c.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.DatabaseURL != "", "lease database URL: required")
	check(c.Shards >= 1 && c.Shards <= 1<<15, "lease shards %d: want 1..32768", c.Shards)
	check(c.MaxMembers >= 1 && c.MaxMembers <= 1<<15, "lease max members %d: want 1..32768", c.MaxMembers)
	check(c.ShardBase >= 0 && c.MemberBase >= 0, "lease key bases %d, %d: want 0 or more", c.ShardBase, c.MemberBase)
	shardEnd, memberEnd := int64(c.ShardBase)+int64(c.Shards), int64(c.MemberBase)+int64(c.MaxMembers)
	check(shardEnd <= 1<<31-1 && memberEnd <= 1<<31-1, "lease keys: shard and member ranges must stay below 2^31")
	check(shardEnd <= int64(c.MemberBase) || memberEnd <= int64(c.ShardBase),
		"lease keys: shards [%d, %d) and member slots [%d, %d) overlap", c.ShardBase, shardEnd, c.MemberBase, memberEnd)
	check(c.Rebalance > 0, "lease rebalance interval %s: want more than 0", c.Rebalance)
	check(c.StatementTimeout > 0, "lease statement timeout %s: want more than 0", c.StatementTimeout)
	check(c.DeadPeer >= 3*time.Second, "lease dead-peer time %s: want at least 3s", c.DeadPeer)
	return errors.Join(errs...)
}

// Stats is what a Coordinator has seen.
type Stats struct {
	Owned   int   // shards held now
	Members int   // members of the group at the last rebalance, this one included
	Taken   int64 // shards taken since start
	Given   int64 // shards given back (or lost with the connection) since start
	Rounds  int64 // rebalances done since start
	// With Weigh: the weight this member holds and the fair share of it.
	Load, Fair float64
}

// Coordinator holds this replica's shards.
type Coordinator struct {
	cfg    Config
	logger *zap.Logger

	// Users hold mu for reading while they work on shards (a batch in
	// flight); the coordinator holds it for writing to give a shard back,
	// so a shard is never released in the middle of such work.
	mu    sync.RWMutex
	owned []bool

	count   atomic.Int32
	members atomic.Int32
	taken   atomic.Int64
	given   atomic.Int64
	rounds  atomic.Int64

	// With Weigh, kept by the session's goroutine: the last weights and
	// when they were weighed, this member's rebalances and the round each
	// shard it gave back was given (0: never); and for readers the load,
	// the fair share (float64 bits) and whether it holds its share.
	lastWeights []float64
	weighed     time.Time
	round       int
	cooling     []int
	load, fair  atomic.Uint64
	share       atomic.Bool

	wakeMu  sync.Mutex
	wakers  []chan struct{}
	changes []chan struct{}
}

// reconnect paces reconnections of the lease connection.
var reconnect = retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2}

// New returns a Coordinator; call Run to start leasing.
func New(cfg Config, logger *zap.Logger) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := pgx.ParseConfig(cfg.DatabaseURL); err != nil {
		return nil, fmt.Errorf("lease database URL: %w", err)
	}
	return &Coordinator{cfg: cfg, logger: logger.With(zap.String("lease_group", cfg.Group)), owned: make([]bool, cfg.Shards),
		cooling: make([]int, cfg.Shards)}, nil
}

// Subscribe returns a channel that receives a value when rows were
// committed on the channel (or may have been: after a reconnect).
func (c *Coordinator) Subscribe() <-chan struct{} { return c.newSignal(&c.wakers) }

// Changes returns a channel that receives a value when the set of owned
// shards changed.
func (c *Coordinator) Changes() <-chan struct{} { return c.newSignal(&c.changes) }

func (c *Coordinator) newSignal(list *[]chan struct{}) <-chan struct{} {
	c.wakeMu.Lock()
	defer c.wakeMu.Unlock()
	ch := make(chan struct{}, 1)
	*list = append(*list, ch)
	return ch
}

func (c *Coordinator) signal(list *[]chan struct{}) {
	c.wakeMu.Lock()
	defer c.wakeMu.Unlock()
	for _, ch := range *list {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Acquire returns the owned shards that fall to worker (shard % workers ==
// worker) and holds them until release is called: call it when the work on
// them is committed or rolled back.
func (c *Coordinator) Acquire(worker, workers int) (shards []int16, release func()) {
	c.mu.RLock()
	for s, mine := range c.owned {
		if mine && s%workers == worker {
			shards = append(shards, int16(s))
		}
	}
	return shards, c.mu.RUnlock
}

// Shards returns the shards owned now, in order.
func (c *Coordinator) Shards() []int16 {
	shards, release := c.Acquire(0, 1)
	release()
	return shards
}

// Owned is the number of shards this replica holds.
func (c *Coordinator) Owned() int { return int(c.count.Load()) }

// HoldsShare reports whether this replica holds its share: at least what
// is left for it when every other member holds the most it takes,
// ceil(shards / members). Readiness waits for it.
func (c *Coordinator) HoldsShare() bool {
	members := int(c.members.Load())
	if c.cfg.Weigh != nil {
		// Within Tolerance of the fair share of the weight, or short of it
		// only because no shard is left free.
		return members > 0 && c.share.Load()
	}
	return members > 0 && c.Owned() >= MinShare(c.cfg.Shards, members)
}

// MinShare is the fewest shards a member of a group of members ends up
// with once the shares are even: shards - (members-1)·ceil(shards/members).
func MinShare(shards, members int) int {
	most := (shards + members - 1) / members
	return max(shards-(members-1)*most, 0)
}

// Stats returns what the coordinator has seen.
func (c *Coordinator) Stats() Stats {
	return Stats{Owned: c.Owned(), Members: int(c.members.Load()), Taken: c.taken.Load(), Given: c.given.Load(), Rounds: c.rounds.Load(),
		Load: math.Float64frombits(c.load.Load()), Fair: math.Float64frombits(c.fair.Load())}
}

// Run leases shards until ctx ends, reconnecting when the connection is
// lost (its shards are then given up at once: PostgreSQL freed them).
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
		c.logger.Warn("lease connection lost; reconnecting", zap.Error(err), zap.Duration("retry_in", wait))
		if !retry.Sleep(ctx, wait) {
			return
		}
	}
}

// connConfig is the lease connection's configuration: a socket deadline to
// interrupt waits, and keepalives plus a user timeout on both ends.
func (c *Coordinator) connConfig() (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(c.cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("parsing database URL: %w", err)
	}
	if cfg.RuntimeParams["application_name"] == "" && c.cfg.AppName != "" {
		cfg.RuntimeParams["application_name"] = c.cfg.AppName
	}
	// The server drops a vanished client (and frees its locks) after
	// idle + 3 probes, or after the user timeout when its data goes unacknowledged.
	idle, probe := c.cfg.DeadPeer/3, c.cfg.DeadPeer/9
	seconds := func(d time.Duration) string { return strconv.Itoa(max(1, int(d/time.Second))) }
	keepalives := [][]byte{[]byte(seconds(idle)), []byte(seconds(probe)), []byte(strconv.Itoa(int(c.cfg.DeadPeer.Milliseconds())))}
	cfg.AfterConnect = func(ctx context.Context, pc *pgconn.PgConn) error {
		if _, err := pc.ExecParams(ctx, keepalivesSQL, keepalives, nil, nil, nil).Close(); err != nil {
			return fmt.Errorf("setting the lease connection's keepalives: %w", err)
		}
		return nil
	}
	dialer := &net.Dialer{
		Timeout:         c.cfg.StatementTimeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: idle, Interval: probe, Count: 3},
		Control:         userTimeout(c.cfg.DeadPeer),
	}
	cfg.DialFunc = dialer.DialContext
	// Interrupt a wait for notifications with a socket deadline, not a
	// cancel request, which could hit the next query on this connection.
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: pc.Conn()}
	}
	return cfg, nil
}

// session holds one lease connection until it fails or ctx ends; joined
// reports whether it got as far as joining the group.
func (c *Coordinator) session(ctx context.Context) (joined bool, err error) {
	cfg, err := c.connConfig()
	if err != nil {
		return false, err
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.StatementTimeout)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return false, fmt.Errorf("connecting for leases: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }() // frees every lock of this session

	slot, err := c.joinMembers(ctx, conn)
	if err != nil {
		return false, err
	}
	if c.cfg.Channel != "" {
		lctx, cancel := context.WithTimeout(ctx, c.cfg.StatementTimeout)
		_, err = conn.Exec(lctx, "LISTEN "+pgx.Identifier{c.cfg.Channel}.Sanitize())
		cancel()
		if err != nil {
			return false, fmt.Errorf("listening on %s: %w", c.cfg.Channel, err)
		}
	}
	c.logger.Info("joined lease group", zap.Int("member_slot", slot), zap.String("channel", c.cfg.Channel))
	c.signal(&c.wakers) // rows may have been committed while we were away
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
			c.signal(&c.wakers)
		}
	}
}

// tryLock takes the advisory lock (Key1, key2) if it is free.
func (c *Coordinator) tryLock(ctx context.Context, conn *pgx.Conn, key2 int64) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StatementTimeout)
	defer cancel()
	var ok bool
	err := conn.QueryRow(ctx, tryLockSQL, c.cfg.Key1, key2).Scan(&ok)
	return ok, err
}

func (c *Coordinator) joinMembers(ctx context.Context, conn *pgx.Conn) (int, error) {
	for slot := range c.cfg.MaxMembers {
		ok, err := c.tryLock(ctx, conn, int64(c.cfg.MemberBase)+int64(slot))
		if err != nil {
			return 0, fmt.Errorf("joining lease group: %w", err)
		}
		if ok {
			return slot, nil
		}
	}
	return 0, fmt.Errorf("joining lease group: all %d member slots taken", c.cfg.MaxMembers)
}

// key1 is the first lock key as pg_locks shows it (classid, an oid).
func (c Config) key1() int64 { return int64(uint32(c.Key1)) }

func (c *Coordinator) key1() int64 { return c.cfg.key1() }

// rebalance moves this replica's share towards ceil(Shards / members),
// or towards the fair share of the weight with Weigh.
func (c *Coordinator) rebalance(ctx context.Context, conn *pgx.Conn) error {
	defer c.rounds.Add(1)
	if c.cfg.Weigh != nil {
		return c.rebalanceWeighted(ctx, conn)
	}
	var members int
	qctx, cancel := context.WithTimeout(ctx, c.cfg.StatementTimeout)
	err := conn.QueryRow(qctx, membersSQL, c.key1(), c.cfg.MemberBase, int64(c.cfg.MemberBase)+int64(c.cfg.MaxMembers)).Scan(&members)
	cancel()
	if err != nil {
		return fmt.Errorf("counting members: %w", err)
	}
	c.members.Store(int32(members))
	n := c.cfg.Shards
	fair := (n + max(members, 1) - 1) / max(members, 1)
	mine := int(c.count.Load())

	if mine > fair {
		given, err := c.giveBack(ctx, conn, mine-fair)
		if given > 0 {
			c.logger.Info("gave shards back", zap.Int("given", given), zap.Int("owned", c.Owned()), zap.Int("members", members))
			c.signal(&c.changes)
		}
		return err
	}
	if mine == fair {
		return nil
	}

	qctx, cancel = context.WithTimeout(ctx, c.cfg.StatementTimeout)
	defer cancel()
	rows, err := conn.Query(qctx, heldShardsSQL, c.key1(), c.cfg.ShardBase, int64(c.cfg.ShardBase)+int64(n))
	if err != nil {
		return fmt.Errorf("listing leased shards: %w", err)
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("listing leased shards: %w", err)
	}
	taken := make([]bool, n)
	for _, s := range held {
		taken[s] = true
	}
	before := mine
	for _, s := range rand.Perm(n) { // random order: replicas starting together collide less
		if mine >= fair {
			break
		}
		if taken[s] {
			continue
		}
		ok, err := c.tryLock(ctx, conn, int64(c.cfg.ShardBase)+int64(s))
		if err != nil {
			return fmt.Errorf("leasing shard %d: %w", s, err)
		}
		if !ok {
			continue
		}
		c.mu.Lock()
		c.owned[s] = true
		c.mu.Unlock()
		mine++
		c.count.Store(int32(mine))
		c.taken.Add(1)
	}
	if mine > before {
		c.logger.Info("took shards", zap.Int("new", mine-before), zap.Int("owned", mine), zap.Int("members", members))
		c.signal(&c.changes)
		c.signal(&c.wakers)
	}
	return nil
}

// giveBack releases up to n shards, highest first, once the work in flight
// on them is done.
func (c *Coordinator) giveBack(ctx context.Context, conn *pgx.Conn, n int) (int, error) {
	var shards []int
	c.mu.RLock()
	for s := len(c.owned) - 1; s >= 0 && len(shards) < n; s-- {
		if c.owned[s] {
			shards = append(shards, s)
		}
	}
	c.mu.RUnlock()
	return c.release(ctx, conn, shards)
}

// release gives back the owned shards listed, in order, once the work in
// flight on them is done; it returns how many it gave back before an error.
func (c *Coordinator) release(ctx context.Context, conn *pgx.Conn, shards []int) (int, error) {
	c.mu.Lock() // waits for work in flight
	defer c.mu.Unlock()
	given := 0
	for _, s := range shards {
		if !c.owned[s] {
			continue
		}
		uctx, cancel := context.WithTimeout(ctx, c.cfg.StatementTimeout)
		_, err := conn.Exec(uctx, unlockSQL, c.cfg.Key1, int64(c.cfg.ShardBase)+int64(s))
		cancel()
		if err != nil {
			return given, fmt.Errorf("releasing shard %d: %w", s, err)
		}
		c.owned[s] = false
		given++
		c.count.Add(-1)
		c.given.Add(1)
	}
	return given, nil
}

func (c *Coordinator) dropAll() {
	c.mu.Lock()
	lost := 0
	for s, mine := range c.owned {
		if mine {
			c.owned[s] = false
			lost++
		}
	}
	c.count.Store(0)
	c.members.Store(0)
	c.mu.Unlock()
	if lost > 0 {
		c.given.Add(int64(lost))
		c.signal(&c.changes)
	}
}
