package store

import (
	"context"
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

	all, err := st.SiteChanges(ctx, time.Time{})
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3}, all.Enabled)
	require.Equal(t, []int64{1, 2, 3}, ids(all.Changed), "the first load reads every enabled site")

	none, err := st.SiteChanges(ctx, all.AsOf)
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
	ch, err := st.SiteChanges(ctx, none.AsOf)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 3, 4}, ch.Enabled)
	require.Equal(t, []int64{3, 4}, ids(ch.Changed))
	require.Equal(t, "http://c2", ch.Changed[0].URL)

	byID, err := st.SitesByID(ctx, []int64{1, 2, 99})
	require.NoError(t, err)
	require.Equal(t, []int64{1}, ids(byID), "only enabled, existing sites")

	_, err = st.AddSites(ctx, []site.Site{{URL: "http://ok"}, {URL: "http://bad", MustMatch: []string{"("}}})
	var invalid *site.InvalidError
	require.ErrorAs(t, err, &invalid)
	require.Equal(t, 1, invalid.Index)
	all, err = st.SiteChanges(ctx, time.Time{})
	require.NoError(t, err)
	require.Len(t, all.Enabled, 3, "all or nothing: the valid first site was not written either")
}
