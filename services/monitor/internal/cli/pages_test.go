package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

func TestPagesAddUpdateExportImportRemove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	st := store.New(pool)
	_, err := pool.Exec(ctx, `INSERT INTO sites (url) SELECT 'https://s' || i || '.example/' FROM generate_series(1, 4) i`)
	require.NoError(t, err)
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Pages(ctx, args, func() (PageStore, error) { return st, nil }, &out, &errOut)
		return code, out.String(), errOut.String()
	}

	code, out, stderr := run("add", "shop", "--title", "Shop status", "--group", "Store front=2,1", "--group", "API=3",
		"--announcement", "Payments are **slow**.")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "/status/shop")
	ps, err := st.Pages(ctx, "shop")
	require.NoError(t, err)
	require.Equal(t, []store.PageGroup{{Name: "Store front", Sites: []int64{2, 1}}, {Name: "API", Sites: []int64{3}}}, ps[0].Groups, "groups and sites in order")
	require.Equal(t, "Payments are **slow**.", ps[0].Announcement)

	code, _, stderr = run("add", "shop", "--title", "again", "--sites", "1")
	require.Equal(t, ExitError, code)
	require.Contains(t, stderr, "page shop: exists")

	// Each bad field is named, and nothing is written.
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"slug":      {[]string{"add", "Bad_Slug", "--title", "x", "--sites", "1"}, `slug "Bad_Slug"`},
		"no title":  {[]string{"add", "p", "--sites", "1"}, "title: required"},
		"no sites":  {[]string{"add", "p", "--title", "x"}, "groups: a page needs at least one site"},
		"bad id":    {[]string{"add", "p", "--title", "x", "--sites", "1,x"}, `sites: ID "x"`},
		"bad group": {[]string{"add", "p", "--title", "x", "--group", "API"}, `group "API": want NAME=ID`},
		"twice":     {[]string{"add", "p", "--title", "x", "--group", "A=1", "--group", "B=1"}, "groups[1]: sites: 1: also in groups[0]"},
		"same name": {[]string{"add", "p", "--title", "x", "--group", "A=1", "--group", "A=2"}, `groups[1]: name "A": also an earlier group's`},
		"both texts": {[]string{"add", "p", "--title", "x", "--sites", "1", "--announcement", "a", "--announcement-file", "f"},
			"announcement, announcement-file: give one of them"},
	} {
		code, _, stderr := run(c.args...)
		require.Equal(t, ExitUsage, code, name)
		require.Contains(t, stderr, c.want, name)
		require.Contains(t, stderr, "nothing written", name)
	}
	code, _, stderr = run("add", "p", "--title", "x", "--sites", "1,99")
	require.Equal(t, ExitError, code)
	require.Contains(t, stderr, "sites [99]: not found")
	_, err = st.Pages(ctx, "p")
	require.ErrorIs(t, err, store.ErrNotFound, "a page with an unknown site is not written")

	// update changes only what it is given; --sites replaces the groups.
	code, _, stderr = run("update", "shop", "--title", "Example Shop")
	require.Equal(t, ExitOK, code, stderr)
	ps, err = st.Pages(ctx, "shop")
	require.NoError(t, err)
	require.Equal(t, "Example Shop", ps[0].Title)
	require.Len(t, ps[0].Groups, 2, "groups kept")
	code, _, stderr = run("update", "shop", "--sites", "4", "--show-urls", "--announcement=")
	require.Equal(t, ExitOK, code, stderr)
	ps, err = st.Pages(ctx, "shop")
	require.NoError(t, err)
	require.Equal(t, []store.PageGroup{{Sites: []int64{4}}}, ps[0].Groups)
	require.True(t, ps[0].ShowURLs)
	require.Empty(t, ps[0].Announcement)
	code, _, stderr = run("update", "shop", "--sites", "")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, stderr, "sites: none")

	code, out, _ = run("list")
	require.Equal(t, ExitOK, code)
	require.Regexp(t, `shop\s+Example Shop\s+1\s+1\s+false\s+true`, out)
	code, out, _ = run("show", "shop")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "(no heading): sites 4")

	// export, then import into another database: the same pages.
	dir := t.TempDir()
	file := filepath.Join(dir, "pages.yaml")
	code, _, stderr = run("update", "shop", "--group", "Store front=2,1", "--group", "API=3", "--announcement", "Hello\n\n- one")
	require.Equal(t, ExitOK, code, stderr)
	code, _, stderr = run("export", file)
	require.Equal(t, ExitOK, code, stderr)
	yaml, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Contains(t, string(yaml), "sites: [2, 1]")
	before, err := st.Pages(ctx, "")
	require.NoError(t, err)
	code, out, stderr = run("import", file)
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "1 replaced")
	after, err := st.Pages(ctx, "")
	require.NoError(t, err)
	require.Equal(t, before[0].Groups, after[0].Groups)
	require.Equal(t, before[0].Announcement, after[0].Announcement)

	require.NoError(t, os.WriteFile(file, []byte("pages:\n  - slug: ok\n    title: fine\n    groups: [{sites: [1]}]\n  - slug: bad\n    groups: [{sites: [1]}]\n"), 0o600))
	code, _, stderr = run("import", file)
	require.Equal(t, ExitUsage, code)
	require.Contains(t, stderr, "page 2 (bad): title: required")
	_, err = st.Pages(ctx, "ok")
	require.ErrorIs(t, err, store.ErrNotFound, "an import with a bad page writes nothing")

	// A site removed leaves its pages.
	_, err = pool.Exec(ctx, "DELETE FROM sites WHERE id = 3")
	require.NoError(t, err)
	ps, err = st.Pages(ctx, "shop")
	require.NoError(t, err)
	require.Equal(t, []store.PageGroup{{Name: "Store front", Sites: []int64{2, 1}}}, ps[0].Groups)

	code, _, _ = run("remove", "shop")
	require.Equal(t, ExitOK, code)
	code, _, stderr = run("remove", "shop")
	require.Equal(t, ExitError, code)
	require.Contains(t, stderr, "page shop: not found")
}
