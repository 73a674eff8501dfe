package e2e

import (
	"archive/zip"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Another team's `go get` of the outbox writer works from a clean module,
// outside this workspace, with no replace directives: the module is served
// from a file-based GOPROXY built from this repository (its dependencies
// from the local module cache), and a program using it builds.
func TestOutboxModuleIsGettableAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "outbox")
	const mod, version = "github.com/sitewatch/sitewatch/outbox", "v0.1.0"

	// The proxy: list, .info, .mod and .zip of one version.
	proxy := t.TempDir()
	dir := filepath.Join(proxy, mod, "@v")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	gomod, err := os.ReadFile(filepath.Join(src, "go.mod"))
	require.NoError(t, err)
	require.NotContains(t, string(gomod), "replace", "a replace in outbox/go.mod is ignored by everyone who imports it")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "list"), []byte(version+"\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, version+".info"), []byte(`{"Version":"`+version+`","Time":"2026-11-24T00:00:00Z"}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, version+".mod"), gomod, 0o644))
	zf, err := os.Create(filepath.Join(dir, version+".zip"))
	require.NoError(t, err)
	zw := zip.NewWriter(zf)
	require.NoError(t, filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		w, err := zw.Create(mod + "@" + version + "/" + filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}))
	require.NoError(t, zw.Close())
	require.NoError(t, zf.Close())

	// The other team's module.
	consumer := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(consumer, "go.mod"), []byte("module example.com/orders\n\ngo 1.26.0\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(consumer, "main.go"), []byte(`package main

import (
	"fmt"

	"github.com/sitewatch/sitewatch/outbox"
)

func main() {
	w, err := outbox.NewWriter("orders.outbox")
	fmt.Println(w != nil, err, outbox.Lanes)
}
`), 0o644))

	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	require.NoError(t, err)
	cache := strings.TrimSpace(string(out))
	env := append(os.Environ(),
		"GOWORK=off", "GOTOOLCHAIN=local", "GOSUMDB=off", "GOFLAGS=-mod=mod -modcacherw",
		"GOPROXY=file://"+proxy+",file://"+filepath.Join(cache, "cache", "download"),
		"GOMODCACHE="+filepath.Join(t.TempDir(), "modcache"), "GOPRIVATE=", "GONOPROXY=", "GONOSUMDB=")
	var graph string
	for _, args := range [][]string{{"get", mod + "@" + version}, {"mod", "tidy"}, {"mod", "graph"},
		{"build", "-o", filepath.Join(consumer, "orders"), "."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = consumer, env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go %s:\n%s", strings.Join(args, " "), out)
		if args[1] == "graph" {
			graph = string(out)
		}
	}
	// A build of one package may not need every module the writer requires
	// (graph pruning), but go mod download, go list -m all and a vendoring
	// team do: the writer must bring no placeholder into their graph.
	require.Contains(t, graph, mod+"@"+version+" github.com/jackc/pgx/v5@")
	require.NotContains(t, graph, "v0.0.0-00010101000000-000000000000", "a placeholder version nobody can download")
	require.NotContains(t, graph, "github.com/sitewatch/sitewatch/db")
	run, err := exec.Command(filepath.Join(consumer, "orders")).CombinedOutput()
	require.NoError(t, err, "%s", run)
	require.Equal(t, "true <nil> 64\n", string(run))
}
