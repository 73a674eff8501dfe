package e2e

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// No Docker engine runs here: what can be checked of the compose stack is
// checked without one. The services run hardened, their health checks call
// subcommands the binaries have, and the settings the product needs are set.
func TestComposeStackIsHardenedAndConsistent(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "deploy", "docker-compose.yml"))
	require.NoError(t, err)
	var compose struct {
		Services map[string]struct {
			ReadOnly    bool              `yaml:"read_only"`
			CapDrop     []string          `yaml:"cap_drop"`
			SecurityOpt []string          `yaml:"security_opt"`
			Environment map[string]string `yaml:"environment"`
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(b, &compose))
	for _, svc := range []string{"monitor", "relay", "sink"} {
		s, ok := compose.Services[svc]
		require.True(t, ok, svc)
		require.True(t, s.ReadOnly, "%s: read-only root file system", svc)
		require.Equal(t, []string{"ALL"}, s.CapDrop, svc)
		require.Contains(t, s.SecurityOpt, "no-new-privileges:true", svc)
		require.GreaterOrEqual(t, len(s.Healthcheck.Test), 3, svc)
		require.Equal(t, "/usr/local/bin/"+svc, s.Healthcheck.Test[1], svc)
		// The health check's subcommand exists: with nothing listening it
		// fails (1), it is not an unknown command (2).
		args := s.Healthcheck.Test[2:]
		code, out := run(t, nil, svc, args...)
		require.Equal(t, 1, code, "%s %s: %s", svc, strings.Join(args, " "), out)
	}
	require.NotEmpty(t, compose.Services["relay"].Environment["RELAY_TOPICS"], "the relay has no permissive default")

	// The example of a relay for another team's outbox sets what the relay requires.
	b, err = os.ReadFile(filepath.Join(filepath.Dir(file), "..", "deploy", "relay-other-outbox.example.yml"))
	require.NoError(t, err)
	var example struct {
		Services map[string]struct {
			ReadOnly    bool              `yaml:"read_only"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(b, &example))
	billing := example.Services["relay-billing"]
	require.True(t, billing.ReadOnly)
	for _, key := range []string{"RELAY_TOPICS", "RELAY_TABLE", "RELAY_CE_SOURCE", "DATABASE_URL"} {
		require.NotEmpty(t, billing.Environment[key], key)
	}
	require.Contains(t, compose.Services["monitor"].Environment, "MONITOR_ALLOW_NETS")
}
