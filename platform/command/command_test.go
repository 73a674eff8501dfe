package command

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

func TestDispatch(t *testing.T) {
	var got []string
	cmds := map[string]Func{
		"run":  func(_ context.Context, args []string, _, _ io.Writer) int { got = args; return 0 },
		"fail": func(context.Context, []string, io.Writer, io.Writer) int { return ExitError },
	}
	var out, errOut bytes.Buffer
	ctx := context.Background()
	require.Equal(t, 0, Dispatch(ctx, "x", "run", "usage\n", cmds, []string{"-a=1"}, &out, &errOut))
	require.Equal(t, []string{"-a=1"}, got, "flags first: the default command")
	require.Equal(t, 0, Dispatch(ctx, "x", "run", "usage\n", cmds, []string{"run", "b"}, &out, &errOut))
	require.Equal(t, []string{"b"}, got)
	require.Equal(t, ExitError, Dispatch(ctx, "x", "run", "usage\n", cmds, []string{"fail"}, &out, &errOut))
	require.Equal(t, ExitUsage, Dispatch(ctx, "x", "run", "usage\n", cmds, []string{"nope"}, &out, &errOut))
	require.Contains(t, errOut.String(), `x: unknown command "nope"`)
	require.Equal(t, 0, Dispatch(ctx, "x", "run", "usage\n", cmds, []string{"help"}, &out, &errOut))
	require.Equal(t, "usage\n", out.String())

	// A group: no default, a subcommand is required.
	out.Reset()
	errOut.Reset()
	require.Equal(t, ExitUsage, Dispatch(ctx, "x group", "", "usage\n", cmds, nil, &out, &errOut))
	require.Equal(t, "x group: a subcommand is required\nusage\n", errOut.String())
	require.Equal(t, ExitUsage, Dispatch(ctx, "x group", "", "usage\n", cmds, []string{"-flag"}, &out, &errOut))
	for _, h := range []string{"-h", "--help", "help"} {
		out.Reset()
		require.Equal(t, ExitOK, Dispatch(ctx, "x group", "", "usage\n", cmds, []string{h}, &out, &errOut), h)
		require.Equal(t, "usage\n", out.String(), h)
	}
	require.Equal(t, 0, Dispatch(ctx, "x group", "", "usage\n", cmds, []string{"run", "c"}, &out, &errOut))
	require.Equal(t, []string{"c"}, got)
}

func TestServe(t *testing.T) {
	var errOut bytes.Buffer
	ctx := context.Background()
	require.Equal(t, ExitError, Serve(ctx, "svc", "info", "json", &errOut, func(context.Context, *zap.Logger) error {
		return errors.New("boom")
	}))
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.Equal(t, ExitOK, Serve(cancelled, "svc", "info", "json", &errOut, func(ctx context.Context, _ *zap.Logger) error {
		return ctx.Err() // failed because shutdown was asked for while starting
	}))
	require.Equal(t, ExitUsage, Serve(ctx, "svc", "loud", "json", &errOut, nil))
	require.Contains(t, errOut.String(), `log level "loud"`)
}

func TestConfigError(t *testing.T) {
	var errOut bytes.Buffer
	code, done := ConfigError(&errOut, "svc", nil)
	require.False(t, done)
	require.Equal(t, ExitOK, code)
	code, done = ConfigError(&errOut, "svc", fmt.Errorf("parsing: %w", flag.ErrHelp))
	require.True(t, done)
	require.Equal(t, ExitOK, code)
	code, done = ConfigError(&errOut, "svc", errors.Join(errors.New("batch-size: 0"), NoArgs([]string{"x"})))
	require.True(t, done)
	require.Equal(t, ExitUsage, code)
	require.Equal(t, "svc: invalid configuration:\nbatch-size: 0\nunexpected arguments [\"x\"]\n", errOut.String())
	require.NoError(t, NoArgs(nil))
}

func TestHealthcheck(t *testing.T) {
	healthy := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/healthz", r.URL.Path)
		if !healthy {
			http.Error(w, `{"loop":"stalled"}`, http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	check := Healthcheck(":" + port) // an empty host is this machine
	var out, errOut bytes.Buffer
	require.Equal(t, ExitOK, check(context.Background(), nil, &out, &errOut), errOut.String())
	healthy = false
	require.Equal(t, ExitError, check(context.Background(), nil, &out, &errOut))
	require.Contains(t, errOut.String(), "503 Service Unavailable")
	require.Equal(t, ExitError, check(context.Background(), []string{"-ops-addr", "127.0.0.1:1"}, &out, &errOut), "nothing listening")
	require.Equal(t, ExitUsage, check(context.Background(), []string{"-ops-addr", "nope"}, &out, &errOut))
}

func TestEscapeMakesControlCharactersVisible(t *testing.T) {
	require.Equal(t, "a?[2Jb?c?d é", Escape("a\x1b[2Jb\x7fc\u009bd é"))
}

func TestIDs(t *testing.T) {
	ids, err := IDs([]string{"1", "42"})
	require.NoError(t, err)
	require.Equal(t, []int64{1, 42}, ids)
	for _, bad := range []string{"0", "-1", "x", "1.5"} {
		_, err := IDs([]string{bad})
		require.ErrorContains(t, err, "want a positive integer", bad)
	}
}
