package status

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
)

// chromium finds Debian's chromium; without it the test fails when
// SITEWATCH_REQUIRE_CHROMIUM is set (make test sets it after
// scripts/chromium.sh installed it) and is skipped otherwise.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("SITEWATCH_REQUIRE_CHROMIUM") != "" {
		t.Fatal("chromium is not installed: scripts/chromium.sh installs it (Debian package chromium)")
	}
	t.Skip("chromium is not installed (scripts/chromium.sh); set SITEWATCH_REQUIRE_CHROMIUM to make this a failure")
	return ""
}

// browse loads url in headless Chromium and returns the DOM after the page
// ran, and the console messages it logged; it saves a screenshot to shot.
func browse(t *testing.T, bin, url, shot string) (dom string, console []string) {
	t.Helper()
	run := func(args ...string) (string, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
			"--user-data-dir=" + t.TempDir(), "--enable-logging=stderr", "--v=0", "--window-size=1280,900"}, args...)...)
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		require.NoError(t, cmd.Run(), "chromium %v: %s", args, errOut.String())
		return out.String(), errOut.String()
	}
	dom, stderr := run("--dump-dom", url)
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, ":CONSOLE") {
			console = append(console, line)
		}
	}
	_, _ = run("--screenshot="+shot, url)
	info, err := os.Stat(shot)
	require.NoError(t, err, "the screenshot of %s", url)
	require.Positive(t, info.Size())
	return dom, console
}

// The pages in a real browser: they load without a console message (no
// script error, no resource refused by the content security policy or
// missing), show the sites and their states, and the site page draws its
// chart. Screenshots go to .cache/screenshots/ of the repository.
func TestPagesInHeadlessChromium(t *testing.T) {
	bin := chromium(t)
	pool := fixture(t, false)
	s, err := New(Config{Addr: "127.0.0.1:0"}, pool, zaptest.NewLogger(t))
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	_, file, _, _ := runtime.Caller(0)
	shots := filepath.Join(filepath.Dir(file), "..", "..", "..", "..", ".cache", "screenshots")
	require.NoError(t, os.MkdirAll(shots, 0o755))

	dom, console := browse(t, bin, srv.URL+"/", filepath.Join(shots, "status-list.png"))
	require.Empty(t, console, "console messages on /")
	require.True(t, strings.Contains(dom, `<span class="state down">down</span>`), "the down site, first")
	require.True(t, strings.Contains(dom, "https://new.example/"), "a site never checked")
	require.True(t, regexp.MustCompile(`<path d="M[0-9.]+ [0-9.]+`).MatchString(dom), "a sparkline drawn")

	dom, console = browse(t, bin, srv.URL+"/sites/2?range=1h", filepath.Join(shots, "status-site.png"))
	require.Empty(t, console, "console messages on the site page")
	require.True(t, strings.Contains(dom, `<rect class="ttfb"`), "the chart, stacked by phase")
	require.True(t, strings.Contains(dom, `<span class="state up">up</span>`), "the site's state")
	t.Logf("screenshots: %s/status-list.png and status-site.png", shots)
}
