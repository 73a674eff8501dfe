package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

func ids(sites []site.Site) []int64 {
	out := []int64{}
	for _, s := range sites {
		out = append(out, s.ID)
	}
	return out
}

// everywhere is the scope of a lone replica of the default region.
var everywhere = site.Scope{Region: "local", Shards: func() []int16 {
	out := make([]int16, site.Shards)
	for i := range out {
		out[i] = int16(i)
	}
	return out
}()}

func TestSiteChangesReadsOnlyChangedRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	st := New(pool)
	st.margin = 0 // the test's transactions are all committed

	added, err := st.AddSites(ctx, []site.Site{
		{URL: "http://a", Enabled: true}, {URL: "http://b", Enabled: true}, {URL: "http://c", Enabled: true}, {URL: "http://off"},
	})
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3, 4}, ids(added))

	all, err := st.SiteChanges(ctx, time.Time{}, everywhere)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3}, all.Enabled)
	require.Equal(t, []int64{1, 2, 3}, ids(all.Changed), "the first load reads every enabled site")

	none, err := st.SiteChanges(ctx, all.AsOf, everywhere)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3}, none.Enabled)
	require.Empty(t, none.Changed)

	_, err = st.UpdateSite(ctx, 2, func(s *site.Site) { s.Enabled = false })
	require.NoError(t, err)
	_, err = st.UpdateSite(ctx, 4, func(s *site.Site) { s.Enabled = true })
	require.NoError(t, err)
	// A change made by hand in psql moves updated_at too (the trigger).
	_, err = pool.Exec(ctx, "UPDATE sites SET url = 'http://c2' WHERE id = 3")
	require.NoError(t, err)
	ch, err := st.SiteChanges(ctx, none.AsOf, everywhere)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 3, 4}, ch.Enabled)
	require.Equal(t, []int64{3, 4}, ids(ch.Changed))
	require.Equal(t, "http://c2", ch.Changed[0].URL)

	byID, err := st.SitesByID(ctx, []int64{1, 2, 99}, everywhere)
	require.NoError(t, err)
	require.Equal(t, []int64{1}, ids(byID), "only enabled, existing sites")

	_, err = st.AddSites(ctx, []site.Site{{URL: "http://ok"}, {URL: "http://bad", MustMatch: []string{"("}}})
	var invalid *site.InvalidError
	require.ErrorAs(t, err, &invalid)
	require.Equal(t, 1, invalid.Index)
	all, err = st.SiteChanges(ctx, time.Time{}, everywhere)
	require.NoError(t, err)
	require.Len(t, all.Enabled, 3, "all or nothing: the valid first site was not written either")
}

func TestAReplicaReadsOnlyTheSitesOfItsShardsAndRegion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	st := New(pool)
	var sites []site.Site
	for i := range 2 * site.Shards {
		s := site.Site{URL: fmt.Sprintf("http://s%d", i), Enabled: true}
		switch i {
		case 3:
			s.Regions = []string{"eu-west"}
		case 5:
			s.Regions = []string{"us-east", "eu-west"}
		}
		sites = append(sites, s)
	}
	_, err := st.AddSites(ctx, sites)
	require.NoError(t, err)

	// The shard column is the id modulo site.Shards.
	var wrong int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM sites WHERE shard <> id % $1", site.Shards).Scan(&wrong))
	require.Zero(t, wrong)

	// Shards 4 and 6 hold ids 4, 6, 260, 262 (ids start at 1); sites 4
	// (eu-west only) and 6 (us-east, eu-west) name their regions.
	ch, err := st.SiteChanges(ctx, time.Time{}, site.Scope{Region: "eu-west", Shards: []int16{4, 6}})
	require.NoError(t, err)
	require.Equal(t, []int64{4, 6, 260, 262}, ch.Enabled)
	require.Equal(t, []int64{4, 6, 260, 262}, ids(ch.Changed))
	byID, err := st.SitesByID(ctx, []int64{4, 5, 6}, site.Scope{Region: "eu-west", Shards: []int16{4, 6}})
	require.NoError(t, err)
	require.Equal(t, []int64{4, 6}, ids(byID), "another shard's site is not read")

	ch, err = st.SiteChanges(ctx, time.Time{}, site.Scope{Region: "us-east", Shards: []int16{4, 6}})
	require.NoError(t, err)
	require.Equal(t, []int64{6, 260, 262}, ch.Enabled)
	ch, err = st.SiteChanges(ctx, time.Time{}, site.Scope{Region: "local", Shards: []int16{4, 6}})
	require.NoError(t, err)
	require.Equal(t, []int64{260, 262}, ch.Enabled, "sites that name their regions are not checked elsewhere")
	ch, err = st.SiteChanges(ctx, time.Time{}, site.Scope{Region: "local", Shards: nil})
	require.NoError(t, err)
	require.Empty(t, ch.Enabled, "no shards leased: nothing to check")

	shown, err := st.Site(ctx, 6)
	require.NoError(t, err)
	require.Equal(t, []string{"us-east", "eu-west"}, shown.Regions)
	_, err = pool.Exec(ctx, "UPDATE sites SET regions = '{EU}' WHERE id = 1")
	require.ErrorContains(t, err, "sites_regions_valid", "the database refuses a bad region too")
	_, err = pool.Exec(ctx, "UPDATE sites SET topic_name = 'no spaces' WHERE id = 1")
	require.ErrorContains(t, err, "sites_topic_valid", "and a topic Kafka would refuse")
}

func TestFleetRegistersRegionsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	st := New(pool)
	a, err := st.Fleet(ctx, "eu-west")
	require.NoError(t, err)
	b, err := st.Fleet(ctx, "us-east")
	require.NoError(t, err)
	again, err := st.Fleet(ctx, "eu-west")
	require.NoError(t, err)
	require.Equal(t, a, again)
	require.NotEqual(t, a.RegionID, b.RegionID)
	require.Equal(t, a.SitesOID, b.SitesOID)
	require.NotZero(t, a.SitesOID)
}
