// Package fleet is a monitor replica's place among the replicas of its
// region: they split the region's sites by shard (site.Shards of them, a
// site's shard fixed by its id), each leasing a fair share of the checks
// (a shard weighs its sites' checks per second) with platform/lease, the
// mechanism the relay uses for its lanes. A
// replica that dies or vanishes loses its shards to the others within
// seconds; the scheduler reloads at once when its shards change.
//
// Lock keys: the sites table's oid is the namespace (the relay's keys use
// the outbox table's); within it, region n uses second keys n<<16 +
// shard and n<<16 + 0x8000 + member slot, so regions never meet.
package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/platform/lease"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

// Config is a replica's fleet settings.
type Config struct {
	DatabaseURL string
	Region      string
	Rebalance   time.Duration // how often shares are evened out
	DeadPeer    time.Duration // about how long a vanished replica keeps its shards
}

const (
	maxMembers  = 1024
	memberSlots = 0x8000 // member slot keys start here within a region's key range
)

// Member is this replica's lease on its region's shards. It is the
// scheduler's Owner.
type Member struct {
	region string
	coord  *lease.Coordinator
}

// New registers the region if it is new and prepares the lease; Run starts it.
func New(ctx context.Context, cfg Config, st *store.Store, logger *zap.Logger, reg prometheus.Registerer) (*Member, error) {
	f, err := st.Fleet(ctx, cfg.Region)
	if err != nil {
		return nil, err
	}
	base := int32(f.RegionID) << 16
	coord, err := lease.New(lease.Config{
		DatabaseURL: cfg.DatabaseURL, AppName: "sitewatch-monitor-lease", Group: "shards of region " + cfg.Region,
		Key1: int32(f.SitesOID), ShardBase: base, Shards: site.Shards, MemberBase: base + memberSlots, MaxMembers: maxMembers,
		Rebalance: cfg.Rebalance, StatementTimeout: max(cfg.DeadPeer/2, time.Second), DeadPeer: cfg.DeadPeer,
		Weigh: func(ctx context.Context) ([]float64, error) { return st.ShardWeights(ctx, cfg.Region) },
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("fleet of region %s: %w", cfg.Region, err)
	}
	m := &Member{region: cfg.Region, coord: coord}
	reg.MustRegister(&collector{m: m})
	return m, nil
}

// Run holds the lease until ctx ends; the shards are then given up.
func (m *Member) Run(ctx context.Context) { m.coord.Run(ctx) }

// Scope is the sites this replica checks now.
func (m *Member) Scope() site.Scope { return site.Scope{Region: m.region, Shards: m.coord.Shards()} }

// Changes receives a value when the replica's shards changed.
func (m *Member) Changes() <-chan struct{} { return m.coord.Changes() }

// Ready says why the replica is not ready: until it holds its share of the
// shards, its region's sites are not all being checked.
func (m *Member) Ready(context.Context) error {
	if m.coord.HoldsShare() {
		return nil
	}
	st := m.coord.Stats()
	if st.Members == 0 {
		return fmt.Errorf("not in region %s's fleet yet (no lease connection)", m.region)
	}
	return fmt.Errorf("holds %.1f checks/s of its fair share of %.1f (%d replicas in region %s), with shards of the region still free",
		st.Load, st.Fair, st.Members, m.region)
}

var (
	shardsDesc = prometheus.NewDesc("sitewatch_monitor_shards_owned",
		"Shards of the region's sites this replica leases (of "+fmt.Sprint(site.Shards)+").", []string{"region"}, nil)
	membersDesc = prometheus.NewDesc("sitewatch_monitor_fleet_members",
		"Replicas of this region seen at the last rebalance, this one included.", []string{"region"}, nil)
	loadDesc = prometheus.NewDesc("sitewatch_monitor_fleet_checks_per_second",
		"Checks per second of the sites in the shards this replica leases, and its fair share (share held and fair): the region's replicas even these out within 5 %.",
		[]string{"region", "share"}, nil)
	handoversDesc = prometheus.NewDesc("sitewatch_monitor_shard_handovers_total",
		"Shards this replica took over or gave up (a lost lease connection gives up all).", []string{"region", "direction"}, nil)
)

type collector struct{ m *Member }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- shardsDesc
	ch <- membersDesc
	ch <- loadDesc
	ch <- handoversDesc
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st, r := c.m.coord.Stats(), c.m.region
	ch <- prometheus.MustNewConstMetric(shardsDesc, prometheus.GaugeValue, float64(st.Owned), r)
	ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(st.Members), r)
	ch <- prometheus.MustNewConstMetric(loadDesc, prometheus.GaugeValue, st.Load, r, "held")
	ch <- prometheus.MustNewConstMetric(loadDesc, prometheus.GaugeValue, st.Fair, r, "fair")
	ch <- prometheus.MustNewConstMetric(handoversDesc, prometheus.CounterValue, float64(st.Taken), r, "taken")
	ch <- prometheus.MustNewConstMetric(handoversDesc, prometheus.CounterValue, float64(st.Given), r, "given")
}
