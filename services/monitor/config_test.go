package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/platform/config"
)

func loadConfig(t *testing.T, args ...string) (Config, error) {
	t.Helper()
	var c Config
	if _, err := c.parse("monitor run", args); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func TestConfigDefaultsAreValid(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/db")
	c, err := loadConfig(t)
	require.NoError(t, err)
	require.Equal(t, 200, c.Concurrency)
	require.Equal(t, 500, c.BatchSize)
	require.Equal(t, ":9101", c.OpsAddr)
	require.Equal(t, "local", c.Region)
	require.True(t, c.BlockPrivate, "private and special-purpose addresses are refused unless allowed")
	require.NotNil(t, c.guard())
}

func TestConfigErrorsNameTheField(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/db")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-database-url="}, "database-url: required"},
		{[]string{"-database-url=postgres://u:p@127.0.0.1:notaport/db"}, "database-url: cannot parse"},
		{[]string{"-concurrency=0"}, "concurrency: 0: want 1..10000"},
		{[]string{"-concurrency=10001"}, "concurrency: 10001"},
		{[]string{"-reload-interval=99ms"}, "reload-interval: 99ms"},
		{[]string{"-max-body-bytes=0"}, "max-body-bytes: 0"},
		{[]string{"-max-body-bytes=1073741825"}, "max-body-bytes: 1073741825"},
		{[]string{"-user-agent="}, `user-agent: ""`},
		{[]string{"-user-agent=a\r\nX-Injected: 1"}, `user-agent: "a\r\nX-Injected: 1"`},
		{[]string{"-batch-size=0"}, "batch-size: 0: want 1..10000"},
		{[]string{"-batch-size=10001"}, "batch-size: 10001"},
		{[]string{"-flush-interval=0s"}, "flush-interval: 0s"},
		{[]string{"-flush-interval=11s"}, "flush-interval: 11s"},
		{[]string{"-ops-addr=nope"}, "ops-addr: "},
		{[]string{"-region=EU West"}, `region: "EU West"`},
		{[]string{"-allow-nets=10.0.0.0/8,nope"}, `allow-nets: "nope": want a CIDR`},
		{[]string{"-region="}, `region: ""`},
		{[]string{"-rebalance-interval=10ms"}, "rebalance-interval: 10ms"},
		{[]string{"-dead-peer=1s"}, "dead-peer: 1s"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := loadConfig(t, tc.args...)
			require.ErrorContains(t, err, tc.want)
		})
	}

	// Every bad setting is reported at once, not only the first.
	_, err := loadConfig(t, "-concurrency=0", "-batch-size=0", "-ops-addr=nope")
	require.ErrorContains(t, err, "concurrency: 0")
	require.ErrorContains(t, err, "batch-size: 0")
	require.ErrorContains(t, err, "ops-addr: ")

	t.Setenv("MONITOR_CONCURRENCY", "many")
	_, err = loadConfig(t)
	require.ErrorContains(t, err, "MONITOR_CONCURRENCY")
}

func TestValidateLeavesTheConfigAsItWas(t *testing.T) {
	c := Config{Concurrency: 0, UserAgent: "", Service: config.Service{OpsAddr: "nope"}}
	before := c
	require.Error(t, c.Validate())
	require.Equal(t, before, c)
}
