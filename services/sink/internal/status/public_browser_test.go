package status

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"
)

// contrastJS reports every element showing text whose colour is under
// the WCAG 2.2 AA contrast with the background behind it (4.5:1, or 3:1
// for large text: 24 px, or 18.66 px bold): the colours as computed, the
// background the first opaque one up the tree.
const contrastJS = `(() => {
  const rgb = s => { const m = s.match(/rgba?\(([^)]+)\)/); if (!m) return null;
    const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const bg = el => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor); if (c && c.a > 0.99) return c; } return null; };
  const out = [], checked = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('svg') || el.closest('.skip')) continue;
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim() !== '');
    if (!own) continue;
    const st = getComputedStyle(el);
    const fg = rgb(st.color), back = bg(el);
    if (!fg || !back) { out.push(el.tagName + ': colours not found'); continue; }
    const [l1, l2] = [lum(fg), lum(back)].sort((a, b) => b - a);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    const size = parseFloat(st.fontSize), bold = parseInt(st.fontWeight) >= 700;
    const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
    checked.push(ratio);
    if (ratio < need) out.push(el.tagName + '.' + el.className + ' "' + el.textContent.trim().slice(0, 40) + '": ' + ratio.toFixed(2) + ' < ' + need);
  }
  return JSON.stringify({failures: out, checked: checked.length, min: Math.min(...checked)});
})()`

// focusJS describes the focused element: what it is, whether it shows a
// focus ring, and whether it is on the screen.
const focusJS = `(() => {
  const el = document.activeElement; const st = getComputedStyle(el); const r = el.getBoundingClientRect();
  return JSON.stringify({tag: el.tagName, text: el.textContent.trim().slice(0, 60), href: el.getAttribute('href') || '',
    ring: st.outlineStyle !== 'none' && parseFloat(st.outlineWidth) >= 2,
    visible: r.width > 0 && r.height > 0 && r.right > 0 && r.left < innerWidth});
})()`

// The public page in a real browser (Debian's chromium, driven over the
// DevTools protocol): no console message or error at desktop and phone
// widths and in dark mode; nothing of a site not on the page; every link
// reached with Tab in order, each with a visible focus ring, the skip link
// first and working; every text at WCAG AA contrast in light and dark
// mode. Screenshots go to .cache/screenshots/ of the repository.
func TestPublicPageInHeadlessChromium(t *testing.T) {
	bin := chromium(t)
	srv := httptest.NewServer(publicServer(t, publicFixture(t), PublicConfig{}))
	defer srv.Close()
	_, file, _, _ := runtime.Caller(0)
	shots := filepath.Join(filepath.Dir(file), "..", "..", "..", "..", ".cache", "screenshots")
	require.NoError(t, os.MkdirAll(shots, 0o755))

	alloc, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()))...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	_, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}) // starts the browser: no timeout on this first call
	require.NoError(t, err)
	_, err = chromedp.Call(ctx, cdpruntime.Enable, cdp.Empty{})
	require.NoError(t, err)

	// Every console message, uncaught exception and browser log entry (a
	// resource refused by the content security policy, or missing).
	var mu sync.Mutex
	var console []string
	note := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		console = append(console, s)
	}
	calls, exceptions, entries := chromedp.Events(ctx, cdpruntime.ConsoleAPICalled), chromedp.Events(ctx, cdpruntime.ExceptionThrown),
		chromedp.Events(ctx, cdplog.EntryAdded)
	go func() {
		for ev, err := range calls {
			if err == nil {
				note(fmt.Sprintf("console.%s", ev.Type))
			}
		}
	}()
	go func() {
		for ev, err := range exceptions {
			if err == nil {
				note("exception: " + ev.ExceptionDetails.Text)
			}
		}
	}()
	go func() {
		for ev, err := range entries {
			if err == nil {
				note(fmt.Sprintf("%s %s: %s", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text))
			}
		}
	}()
	ctx, cancel = context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	page := srv.URL + "/status/shop"
	scheme := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: name}}})
			return err
		})
	}
	load := chromedp.Steps(chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(".banner")))

	for _, v := range []struct {
		name          string
		width, height int64
		mobile        bool
		dark          bool
	}{
		{"desktop", 1280, 900, false, false},
		{"phone", 390, 844, true, false},
		{"desktop-dark", 1280, 900, false, true},
		{"phone-dark", 390, 844, true, true},
	} {
		opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(2)}
		if v.mobile {
			opts = append(opts, chromedp.EmulateMobile)
		}
		mode := map[bool]string{true: "dark", false: "light"}[v.dark]
		require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(v.width, v.height, opts...), scheme(mode), load), v.name)
		html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		require.NoError(t, err)
		contrast, err := chromedp.Run(ctx, chromedp.Evaluate[string](contrastJS))
		require.NoError(t, err)
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100) /* 100: PNG */)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(shots, "public-"+v.name+".png"), shot, 0o644))
		for _, p := range private {
			require.NotContains(t, html, p, "%s: nothing private in the browser either", v.name)
		}
		require.Contains(t, html, "Partial outage")
		require.Contains(t, contrast, `"failures":[]`, "%s: text under WCAG AA contrast: %s", v.name, contrast)
		require.NotContains(t, contrast, `"checked":0`, "%s: the contrast check saw no text", v.name)
		t.Logf("%s: contrast %s", v.name, contrast)
	}
	bodyBG, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`))
	require.NoError(t, err)
	require.Equal(t, "rgb(13, 17, 23)", bodyBG, "dark mode follows prefers-color-scheme")

	// Keyboard: Tab walks every link in the document's order, each with a
	// visible focus ring; the skip link comes first and moves to the services.
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), scheme("light"), load))
	links, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))`))
	require.NoError(t, err)
	require.Len(t, links, 4, "skip link, the announcement's link, the feed and the JSON")
	for i, href := range links {
		require.NoError(t, chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)))
		focus, err := chromedp.Run(ctx, chromedp.Evaluate[string](focusJS))
		require.NoError(t, err)
		require.Contains(t, focus, `"tag":"A"`, "Tab %d reaches a link: %s", i+1, focus)
		require.Contains(t, focus, `"href":"`+href+`"`, "Tab %d follows the document's order: %s", i+1, focus)
		require.Contains(t, focus, `"ring":true`, "Tab %d: a visible focus ring: %s", i+1, focus)
		require.Contains(t, focus, `"visible":true`, "Tab %d: the focused link is on the screen: %s", i+1, focus)
	}
	require.NoError(t, chromedp.Do(ctx, load, chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Enter)))
	hash, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash`))
	require.NoError(t, err)
	require.Equal(t, "#services", hash, "the skip link")

	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, console, "console messages, errors or refused resources: %s", strings.Join(console, "\n"))
	t.Logf("screenshots: %s/public-{desktop,phone,desktop-dark,phone-dark}.png", shots)
}
