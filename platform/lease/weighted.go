package lease

import (
	"cmp"
	"context"
	_ "embed"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

var (
	//go:embed members_pids.sql
	membersPIDsSQL string
	//go:embed held_shards_by.sql
	heldShardsBySQL string
)

// Tolerance is how far from the fair share of the weight a member's load
// may be before shards move: ±5 %.
const Tolerance = 0.05

// cooldownRounds is how many rebalances a member leaves the shards it gave
// back to the others, so it does not take them straight back.
const cooldownRounds = 3

// weights returns the shards' weights, weighed again at most every
// weighEvery; a failed weighing keeps the last weights (equal ones before
// the first), so a slow query never costs the lease. Every shard weighs
// at least a thousandth of the average, so empty shards are shared too.
func (c *Coordinator) weights(ctx context.Context) []float64 {
	if c.weighed.IsZero() || time.Since(c.weighed) >= c.weighEvery() {
		wctx, cancel := context.WithTimeout(ctx, c.cfg.StatementTimeout)
		w, err := c.cfg.Weigh(wctx)
		cancel()
		switch {
		case err != nil:
			c.logger.Warn("weighing the shards failed; keeping the last weights", zap.Error(err))
		case len(w) != c.cfg.Shards:
			c.logger.Error("weighing the shards gave the wrong count; keeping the last weights", zap.Int("got", len(w)), zap.Int("shards", c.cfg.Shards))
		default:
			c.lastWeights, c.weighed = w, time.Now()
		}
	}
	n := c.cfg.Shards
	out := make([]float64, n)
	total := 0.0
	for s := range n {
		if s < len(c.lastWeights) && c.lastWeights[s] > 0 && !math.IsInf(c.lastWeights[s], 0) {
			out[s] = c.lastWeights[s]
		}
		total += out[s]
	}
	floor := max(total, 1) / float64(n) / 1000
	for s := range out {
		out[s] += floor
	}
	return out
}

func (c *Coordinator) weighEvery() time.Duration { return 10 * c.cfg.Rebalance }

// rebalanceWeighted moves this member's load (the weight of its shards)
// towards the fair share, total / members, from what every member holds:
// above the fair share by more than Tolerance it gives shards back down
// to it; the heaviest member gives shards to the lightest when that one
// is below it by more than Tolerance; below the fair share a member takes
// free shards that keep it within Tolerance, heaviest first, and the
// lightest takes every free shard, so no shard stays free.
func (c *Coordinator) rebalanceWeighted(ctx context.Context, conn *pgx.Conn) error {
	w := c.weights(ctx)
	qctx, cancel := context.WithTimeout(ctx, c.cfg.StatementTimeout)
	defer cancel()
	rows, err := conn.Query(qctx, membersPIDsSQL, c.key1(), c.cfg.MemberBase, int64(c.cfg.MemberBase)+int64(c.cfg.MaxMembers))
	if err != nil {
		return fmt.Errorf("listing members: %w", err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return fmt.Errorf("listing members: %w", err)
	}
	me := int32(conn.PgConn().PID())
	if !slices.Contains(pids, me) {
		pids = append(pids, me)
	}
	c.members.Store(int32(len(pids)))
	rows, err = conn.Query(qctx, heldShardsBySQL, c.key1(), c.cfg.ShardBase, int64(c.cfg.ShardBase)+int64(c.cfg.Shards))
	if err != nil {
		return fmt.Errorf("listing leased shards: %w", err)
	}
	type hold struct {
		Shard int64
		PID   int32
	}
	heldBy := make(map[int32][]int64)
	held, err := pgx.CollectRows(rows, pgx.RowToStructByPos[hold])
	if err != nil {
		return fmt.Errorf("listing leased shards: %w", err)
	}

	load := make(map[int32]float64, len(pids))
	for _, p := range pids {
		load[p] = 0
	}
	taken := make([]bool, c.cfg.Shards)
	for _, h := range held {
		taken[h.Shard] = true
		load[h.PID] += w[h.Shard]
		heldBy[h.PID] = append(heldBy[h.PID], h.Shard)
	}
	total := 0.0
	for _, x := range w {
		total += x
	}
	fair := total / float64(len(pids))
	hi, lo := fair*(1+Tolerance), fair*(1-Tolerance)
	// The lightest and heaviest members, ties to the lowest pid.
	light, heavy := pids[0], pids[0]
	for _, p := range pids {
		if load[p] < load[light] || load[p] == load[light] && p < light {
			light = p
		}
		if load[p] > load[heavy] || load[p] == load[heavy] && p < heavy {
			heavy = p
		}
	}
	mine := load[me]
	c.round++

	// Give back: down to the fair share when above the band, and to the
	// lightest member when it is below it and this one is the heaviest.
	var owned []int
	c.mu.RLock()
	for s, ok := range c.owned {
		if ok {
			owned = append(owned, s)
		}
	}
	c.mu.RUnlock()
	slices.SortFunc(owned, func(a, b int) int { return cmp.Compare(w[b], w[a]) })
	var release []int
	keep := owned[:0:0]
	lightLoad := load[light]
	for _, s := range owned {
		switch {
		case mine > hi && mine-w[s] >= fair:
		case me == heavy && light != me && lightLoad < lo && mine-w[s] >= lightLoad+w[s]:
			lightLoad += w[s]
		default:
			keep = append(keep, s)
			continue
		}
		release = append(release, s)
		mine -= w[s]
	}
	if len(release) > 0 {
		given, err := c.release(ctx, conn, release)
		for _, s := range release[:given] {
			c.cooling[s] = c.round
		}
		c.logger.Info("gave shards back", zap.Int("given", given), zap.Int("owned", c.Owned()), zap.Int("members", len(pids)),
			zap.Float64("load", mine), zap.Float64("fair", fair))
		c.signal(&c.changes)
		if err != nil {
			return err
		}
	}

	// Take free shards, heaviest first.
	var free []int
	for s, t := range taken {
		if !t {
			free = append(free, s)
		}
	}
	slices.SortFunc(free, func(a, b int) int { return cmp.Compare(w[b], w[a]) })
	lightest := me == light
	took, left := 0, 0
	for _, s := range free {
		cooling := c.cooling[s] > 0 && c.round-c.cooling[s] <= cooldownRounds
		want := mine < fair && (lightest || !cooling && (mine+w[s] <= hi || mine < lo))
		if !want {
			left++
			continue
		}
		ok, err := c.tryLock(ctx, conn, int64(c.cfg.ShardBase)+int64(s))
		if err != nil {
			return fmt.Errorf("leasing shard %d: %w", s, err)
		}
		if !ok {
			continue // another member took it first
		}
		c.mu.Lock()
		c.owned[s] = true
		c.mu.Unlock()
		c.count.Add(1)
		c.taken.Add(1)
		mine += w[s]
		took++
	}
	// Short of the band, this member holds its share only when no shard is
	// free and the heaviest has none it could give without becoming the
	// lighter of the two (shards too coarse for a closer split).
	canGain := false
	if mine < lo && heavy != me {
		for _, s := range heldBy[heavy] {
			if load[heavy]-w[s] >= mine+w[s] {
				canGain = true
				break
			}
		}
	}
	c.load.Store(math.Float64bits(mine))
	c.fair.Store(math.Float64bits(fair))
	c.share.Store(mine >= lo || left == 0 && !canGain)
	if took > 0 {
		c.logger.Info("took shards", zap.Int("new", took), zap.Int("owned", c.Owned()), zap.Int("members", len(pids)),
			zap.Float64("load", mine), zap.Float64("fair", fair))
		c.signal(&c.changes)
		c.signal(&c.wakers)
	}
	return nil
}
