package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// repoRoot is the repository's root directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..")
}

// loadCompose loads deploy/docker-compose.yml the way `docker compose
// config` does (compose-go: schema, interpolation, profiles, depends_on).
func loadCompose(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	return loadComposeEnv(t, nil, profiles...)
}

// loadComposeEnv is loadCompose with the variables env (NAME=value) set.
func loadComposeEnv(t *testing.T, env []string, profiles ...string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(repoRoot(t), "deploy", "docker-compose.yml")},
		cli.WithName("sitewatch"), cli.WithProfiles(profiles), cli.WithEnv(env))
	require.NoError(t, err)
	p, err := opts.LoadProject(context.Background())
	require.NoError(t, err, "compose file with profiles %v", profiles)
	return p
}

// The compose file loads with and without the observability profile; the
// profile adds Prometheus, loading the alert rules, and Grafana, with its
// data source and the dashboard provisioned; their images are pinned.
func TestObservabilityComposeProfile(t *testing.T) {
	root := repoRoot(t)
	plain := loadCompose(t)
	for _, svc := range []string{"prometheus", "grafana"} {
		_, err := plain.GetService(svc)
		require.Error(t, err, "%s runs only under the observability profile", svc)
	}
	_, err := plain.GetService("relay")
	require.NoError(t, err)

	p := loadCompose(t, "observability")
	mounts := func(svc string) map[string]string { // target → source, relative to the repository
		s, err := p.GetService(svc)
		require.NoError(t, err, "the observability profile has %s", svc)
		require.Regexp(t, `^[a-z0-9./-]+:v?\d+\.\d+\.\d+$`, s.Image, "%s: image pinned by tag", svc)
		out := map[string]string{}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			rel, err := filepath.Rel(root, v.Source)
			require.NoError(t, err)
			_, err = os.Stat(v.Source)
			require.NoError(t, err, "%s mounts %s, which must exist", svc, rel)
			out[v.Target] = filepath.ToSlash(rel)
		}
		return out
	}

	prom := mounts("prometheus")
	require.Equal(t, "deploy/prometheus.yml", prom["/etc/prometheus/prometheus.yml"])
	var promCfg struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus.yml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &promCfg))
	require.Len(t, promCfg.RuleFiles, 1)
	require.Equal(t, "deploy/prometheus/alerts.yml", prom[promCfg.RuleFiles[0]],
		"Prometheus loads the rules from where compose mounts alerts.yml")

	graf := mounts("grafana")
	require.Equal(t, "deploy/grafana/provisioning", graf["/etc/grafana/provisioning"])
	var provider struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	b, err = os.ReadFile(filepath.Join(root, "deploy", "grafana", "provisioning", "dashboards", "sitewatch.yml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &provider))
	require.Len(t, provider.Providers, 1)
	require.Equal(t, "deploy/grafana/dashboards", graf[provider.Providers[0].Options.Path],
		"Grafana's dashboard provider reads where compose mounts the dashboards")
	_, err = os.Stat(filepath.Join(root, "deploy", "grafana", "dashboards", "sitewatch.json"))
	require.NoError(t, err)

	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	b, err = os.ReadFile(filepath.Join(root, "deploy", "grafana", "provisioning", "datasources", "prometheus.yml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &ds))
	require.Len(t, ds.Datasources, 1)
	require.Equal(t, "prometheus", ds.Datasources[0].Type)
	require.Equal(t, "http://prometheus:9090", ds.Datasources[0].URL, "the compose service's name and port")
	for _, uid := range dashboardDatasourceUIDs(t) {
		require.Equal(t, ds.Datasources[0].UID, uid, "every dashboard query uses the provisioned data source")
	}
}

// promtool returns the path of promtool (Debian package prometheus), or
// skips the test when it is missing, unless SITEWATCH_REQUIRE_PROMTOOL is set
// (make test sets it, having installed the package).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("SITEWATCH_REQUIRE_PROMTOOL") != "" {
			t.Fatalf("promtool not found and SITEWATCH_REQUIRE_PROMTOOL is set: apt-get install prometheus")
		}
		t.Skip("promtool not found: apt-get install prometheus (Debian) to check the alert rules; " +
			"set SITEWATCH_REQUIRE_PROMTOOL=1 to fail instead of skipping")
	}
	return p
}

func runPromtool(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = filepath.Join(repoRoot(t), "deploy", "prometheus")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// The alert rules are valid, their unit tests pass, and those tests prove
// alerts fire (not only that nothing fires); the Prometheus configuration
// that loads them is valid; every dashboard query is valid PromQL.
func TestObservabilityAlertRules(t *testing.T) {
	root := repoRoot(t)
	runPromtool(t, "check", "rules", "alerts.yml")
	out := runPromtool(t, "test", "rules", "alerts_test.yml")
	require.Contains(t, out, "SUCCESS")

	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "alerts.yml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &rules))
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
		}
	}
	for _, want := range []string{"SitewatchRelayLagging", "SitewatchRelayParkedRows", "SitewatchSinkDeadLetters", "SitewatchSitesDown",
		"SitewatchChecksFailing", "SitewatchNotificationsFailed", "SitewatchMonitorRecorderStuck"} {
		require.Contains(t, alerts, want)
	}

	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	b, err = os.ReadFile(filepath.Join(root, "deploy", "prometheus", "alerts_test.yml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &tests))
	fired := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			require.Contains(t, alerts, a.Alertname, "alerts_test.yml tests an alert alerts.yml has")
			if len(a.ExpAlerts) > 0 {
				fired[a.Alertname] = true
			}
		}
	}
	require.GreaterOrEqual(t, len(fired), 2, "the unit tests make at least two alerts fire: %v", fired)

	// prometheus.yml, with its rule file where compose mounts it.
	dir := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus.yml"))
	require.NoError(t, err)
	local := strings.ReplaceAll(string(cfg), "/etc/prometheus/rules/alerts.yml", filepath.Join(root, "deploy", "prometheus", "alerts.yml"))
	require.NotEqual(t, string(cfg), local)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(local), 0o600))
	runPromtool(t, "check", "config", filepath.Join(dir, "prometheus.yml"))

	// Every dashboard query, as a recording rule: promtool parses it.
	exprs := dashboardExprs(t)
	require.GreaterOrEqual(t, len(exprs), 20)
	var rec strings.Builder
	rec.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		fmt.Fprintf(&rec, "      - record: dashboard:query_%d\n        expr: %s\n", i, strconv.Quote(e))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dashboard.yml"), []byte(rec.String()), 0o600))
	runPromtool(t, "check", "rules", filepath.Join(dir, "dashboard.yml"))
}

type dashboard struct {
	UID    string  `json:"uid"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr       string `json:"expr"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "grafana", "dashboards", "sitewatch.json"))
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(b, &d))
	require.NotEmpty(t, d.UID)
	return d
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

func dashboardExprs(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, p := range allPanels(readDashboard(t).Panels) {
		for _, tg := range p.Targets {
			require.NotEmpty(t, tg.Expr, "panel %q has a query without an expression", p.Title)
			out = append(out, tg.Expr)
		}
	}
	return out
}

func dashboardDatasourceUIDs(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, p := range allPanels(readDashboard(t).Panels) {
		if len(p.Targets) == 0 {
			continue
		}
		require.NotNil(t, p.Datasource, "panel %q names its data source", p.Title)
		out = append(out, p.Datasource.UID)
		for _, tg := range p.Targets {
			if tg.Datasource != nil {
				out = append(out, tg.Datasource.UID)
			}
		}
	}
	return out
}

var metricName = regexp.MustCompile(`sitewatch_[a-z0-9_]*[a-z0-9]`)

// Every sitewatch_* metric the dashboard, the alert rules and their tests
// name is one a service registers: renaming a metric in Go without the
// dashboard and rules fails here.
func TestObservabilityMetricNamesAreRegistered(t *testing.T) {
	root := repoRoot(t)
	registered := registeredMetricNames(t, filepath.Join(root, "services"), filepath.Join(root, "platform"))
	// The scan finds the metrics of every service, not none.
	for _, name := range []string{"sitewatch_relay_pending_rows", "sitewatch_sink_malformed_total",
		"sitewatch_monitor_checks_total", "sitewatch_notifier_deliveries_total"} {
		require.True(t, registered(name), "scan of the Go sources misses %s", name)
	}
	require.False(t, registered("sitewatch_relay_no_such_metric"))
	require.False(t, registered("sitewatch_sink_no_such_total"), "a prefix alone does not register a name")

	files := []string{
		filepath.Join(root, "deploy", "prometheus", "alerts.yml"),
		filepath.Join(root, "deploy", "prometheus", "alerts_test.yml"),
		filepath.Join(root, "deploy", "grafana", "dashboards", "sitewatch.json"),
	}
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		names := metricName.FindAllString(string(b), -1)
		require.NotEmpty(t, names, "%s names no sitewatch metric", f)
		for _, n := range names {
			seen++
			ok := registered(n)
			for _, suffix := range []string{"_bucket", "_sum", "_count"} { // series of a histogram
				if base, cut := strings.CutSuffix(n, suffix); cut && registered(base) {
					ok = true
				}
			}
			require.True(t, ok, "%s names %s, which no service registers", filepath.Base(f), n)
		}
	}
	require.GreaterOrEqual(t, seen, 30)
}

// registeredMetricNames scans the non-test Go files under dirs for metric
// names: a string literal that is the whole name, or, within one file, a
// literal prefix ending in '_' (the sink's "sitewatch_sink_" + name) and a
// literal that completes it.
func registeredMetricNames(t *testing.T, dirs ...string) func(string) bool {
	t.Helper()
	whole := map[string]bool{}
	type file struct{ prefixes, literals []string }
	var files []file
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			var fl file
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					return true
				}
				fl.literals = append(fl.literals, s)
				if strings.HasPrefix(s, "sitewatch_") {
					if strings.HasSuffix(s, "_") {
						fl.prefixes = append(fl.prefixes, s)
					} else {
						whole[s] = true
					}
				}
				return true
			})
			files = append(files, fl)
			return nil
		})
		require.NoError(t, err)
	}
	return func(name string) bool {
		if whole[name] {
			return true
		}
		for _, f := range files {
			for _, p := range f.prefixes {
				if rest, ok := strings.CutPrefix(name, p); ok && slices.Contains(f.literals, rest) {
					return true
				}
			}
		}
		return false
	}
}
