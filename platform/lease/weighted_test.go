package lease

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// siteWeights are the weights of 256 shards holding sites 1..n, a site's
// shard its id % 256, each checked as often: the monitor's case.
func siteWeights(n int) []float64 {
	w := make([]float64, 256)
	for id := 1; id <= n; id++ {
		w[id%256]++
	}
	return w
}

// With weights, members even out their load, not their count of shards:
// 300 sites on 3 members by count of shards put 44 % of the checks on one
// of them; by weight each ends within ±10 % of its fair share, every shard
// held once, and the shares then stay put.
func TestMembersShareTheWeightWithinTenPercent(t *testing.T) {
	t.Parallel()
	for _, sites := range []int{100, 300, 1000} {
		for _, members := range []int{2, 3, 5} {
			t.Run(fmt.Sprintf("%d sites on %d members", sites, members), func(t *testing.T) {
				t.Parallel()
				_, _, cfg := table(t)
				cfg.Shards = 256
				weights := siteWeights(sites)
				cfg.Weigh = func(context.Context) ([]float64, error) { return weights, nil }
				var cs []*Coordinator
				for range members {
					c, _ := start(t, cfg)
					cs = append(cs, c)
				}
				fair := float64(sites) / float64(members)
				loads := func() ([]float64, bool) {
					held := map[int16]int{}
					out := make([]float64, len(cs))
					for i, c := range cs {
						for _, s := range c.Shards() {
							held[s]++
							out[i] += weights[s]
						}
					}
					if len(held) != 256 {
						return out, false
					}
					for _, n := range held {
						if n != 1 {
							return out, false
						}
					}
					for _, l := range out {
						if l < 0.9*fair || l > 1.1*fair {
							return out, false
						}
					}
					return out, true
				}
				require.Eventually(t, func() bool { _, ok := loads(); return ok }, 30*time.Second, 20*time.Millisecond,
					"every shard held once and each member within ±10 %% of %.1f sites", fair)
				// It settles: five rebalances in a row move nothing, and the
				// shares are still even.
				moves := func() int64 {
					n := int64(0)
					for _, c := range cs {
						n += c.Stats().Taken + c.Stats().Given
					}
					return n
				}
				settled := func() bool {
					before, round := moves(), cs[0].Stats().Rounds
					for cs[0].Stats().Rounds < round+5 {
						time.Sleep(cfg.Rebalance / 5) // rounds are the event; the test has no other clock
					}
					return moves() == before
				}
				require.Eventually(t, settled, 30*time.Second, time.Millisecond, "the shares settle")
				got, ok := loads()
				require.True(t, ok, "settled and even: %v", got)
				for i, c := range cs {
					require.True(t, c.HoldsShare(), "member %d is ready", i)
				}
			})
		}
	}
}

// A member joining takes its share of the weight from the others, and a
// member leaving leaves its shards to them.
func TestWeightedSharesFollowMembersComingAndGoing(t *testing.T) {
	t.Parallel()
	_, _, cfg := table(t)
	cfg.Shards = 256
	weights := siteWeights(300)
	cfg.Weigh = func(context.Context) ([]float64, error) { return weights, nil }
	a, _ := start(t, cfg)
	waitOwned(t, "alone, a member holds every shard", func() bool { return a.Owned() == 256 })
	b, stopB := start(t, cfg)
	load := func(c *Coordinator) float64 {
		l := 0.0
		for _, s := range c.Shards() {
			l += weights[s]
		}
		return l
	}
	waitOwned(t, "two members hold 150 sites each, within 10 %", func() bool {
		return a.Owned()+b.Owned() == 256 && load(a) >= 135 && load(b) >= 135
	})
	stopB()
	waitOwned(t, "the survivor takes the leaver's shards", func() bool { return a.Owned() == 256 })
}
