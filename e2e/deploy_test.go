package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/sitewatch/sitewatch/db"
	"github.com/sitewatch/sitewatch/platform/config"
	"github.com/sitewatch/sitewatch/platform/kafkaclient"
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
		// Its own database role, made by postgres/roles.sh and granted by
		// every migrate (db/grants.sql); only migrate runs as the owner.
		require.True(t, strings.HasPrefix(s.Environment["DATABASE_URL"], "postgres://sitewatch_"+svc+":"), "%s: %s", svc, s.Environment["DATABASE_URL"])
		require.Contains(t, db.Roles, "sitewatch_"+svc)
	}
	roles, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "deploy", "postgres", "roles.sh"))
	require.NoError(t, err)
	require.Contains(t, string(roles), `for svc in monitor relay sink; do`)
	require.Contains(t, string(roles), `"sitewatch_$svc"`)
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

// The secure profile: a broker speaking only SASL_SSL, and the relay and the
// sink pointed at it by the env file scripts/tls.sh writes, whose settings
// (the CA as one line of PEM with literal \n) the services accept.
func TestComposeSecureProfile(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	deploy := filepath.Join(filepath.Dir(file), "..", "deploy")
	b, err := os.ReadFile(filepath.Join(deploy, "docker-compose.yml"))
	require.NoError(t, err)
	var compose struct {
		Services map[string]struct {
			Profiles    []string          `yaml:"profiles"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(b, &compose))
	secure := compose.Services["kafka-secure"]
	require.Equal(t, []string{"secure"}, secure.Profiles)
	require.Contains(t, secure.Volumes, "./kafka-secure.properties:/etc/kafka/secure.properties:ro")
	props, err := os.ReadFile(filepath.Join(deploy, "kafka-secure.properties"))
	require.NoError(t, err)
	require.Contains(t, string(props), "sasl.enabled.mechanisms=SCRAM-SHA-512")
	require.Contains(t, string(props), "advertised.listeners=SASL_SSL://kafka-secure:9094,")
	for _, svc := range []string{"relay", "sink"} {
		env := compose.Services[svc].Environment
		for key, want := range map[string]string{
			"KAFKA_BROKERS": "${SITEWATCH_KAFKA_BROKERS:-kafka:9092}", "KAFKA_SECURITY_PROTOCOL": "${KAFKA_SECURITY_PROTOCOL:-plaintext}",
			"KAFKA_SASL_MECHANISM": "${KAFKA_SASL_MECHANISM:-}", "KAFKA_SASL_USERNAME": "${KAFKA_SASL_USERNAME:-}",
			"KAFKA_SASL_PASSWORD": "${KAFKA_SASL_PASSWORD:-}", "KAFKA_CA_PEM": "${KAFKA_CA_PEM:-}",
		} {
			require.Equal(t, want, env[key], "%s: %s", svc, key)
		}
	}

	// The env file of scripts/tls.sh, as compose reads it (no escapes in
	// unquoted values), is a configuration the services accept.
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	dir := t.TempDir()
	out, err := exec.Command("bash", filepath.Join(filepath.Dir(file), "..", "scripts", "tls.sh"), dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	envFile, err := os.ReadFile(filepath.Join(dir, "secure.env"))
	require.NoError(t, err)
	vars := map[string]string{}
	for _, line := range strings.Split(string(envFile), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
			vars[k] = v
		}
	}
	require.Contains(t, vars["KAFKA_CA_PEM"], `-----BEGIN CERTIFICATE-----\n`, "one line, literal \\n")
	c := kafkaclient.Config{Brokers: vars["SITEWATCH_KAFKA_BROKERS"], SecurityProtocol: vars["KAFKA_SECURITY_PROTOCOL"],
		SASLMechanism: vars["KAFKA_SASL_MECHANISM"], SASLUsername: vars["KAFKA_SASL_USERNAME"],
		SASLPassword: vars["KAFKA_SASL_PASSWORD"], CAPEM: vars["KAFKA_CA_PEM"]}
	require.NoError(t, c.Validate())
	require.Equal(t, "kafka-secure:9094", c.Brokers)
	require.FileExists(t, filepath.Join(vars["SITEWATCH_SECRETS_DIR"], "broker-keystore.pem"))
	crt, err := exec.Command("openssl", "x509", "-in", filepath.Join(dir, "broker.crt"), "-noout", "-ext", "subjectAltName").CombinedOutput()
	require.NoError(t, err, "%s", crt)
	require.Contains(t, string(crt), "DNS:kafka-secure", "the name the services connect by")
}

// Every variable compose gives a sitewatch service is one the binary reads
// (a typo such as SINK_TOPICS would be ignored silently), and every
// command compose runs is a subcommand the binary has.
func TestComposeServicesReadWhatTheyAreGiven(t *testing.T) {
	binary := map[string]string{"monitor": "monitor", "migrate": "monitor", "relay": "relay", "sink": "sink"}
	prefix := map[string]string{"monitor": "MONITOR", "relay": "RELAY", "sink": "SINK"}
	// Read by the CLI, not a flag of run: SITEWATCH_CHANNEL_SECRET (channels add).
	extra := map[string]bool{"SITEWATCH_CHANNEL_SECRET": true}
	flagLine := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	for _, profiles := range [][]string{nil, {"secure"}} {
		p := loadCompose(t, profiles...)
		for svc, bin := range binary {
			s, err := p.GetService(svc)
			require.NoError(t, err, svc)
			sub := "run"
			if len(s.Command) > 0 {
				sub = s.Command[0]
			}
			code, help := run(t, nil, bin, sub, "-h")
			require.Equal(t, 0, code, "%s: command %q is not a subcommand of %s: %s", svc, sub, bin, help)
			read := map[string]bool{}
			for _, m := range flagLine.FindAllStringSubmatch(help, -1) {
				for _, env := range config.EnvNames(prefix[bin], m[1]) {
					read[env], read[env+"_FILE"] = true, true
				}
			}
			require.NotEmpty(t, read, "%s %s -h lists its flags", bin, sub)
			for key := range s.Environment {
				require.True(t, read[key] || extra[key], "%s (profiles %v): %s is set but %s %s reads no such variable", svc, profiles, key, bin, sub)
			}
		}
	}
}
