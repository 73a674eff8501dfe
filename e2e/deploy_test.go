package e2e

import (
	"net/url"
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
		require.Equal(t, "/run/secrets/"+svc+"_database_url", s.Environment["DATABASE_URL_FILE"], svc)
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
	for _, key := range []string{"RELAY_TOPICS", "RELAY_TABLE", "RELAY_CE_SOURCE", "DATABASE_URL_FILE"} {
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
			"KAFKA_SASL_PASSWORD_FILE": "${KAFKA_SASL_PASSWORD_FILE:-/dev/null}", "KAFKA_CA_PEM": "${KAFKA_CA_PEM:-}",
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
	require.NotContains(t, vars, "KAFKA_SASL_PASSWORD", "the password is a secret file, not in the env file")
	require.Equal(t, "/run/secrets/kafka_sasl_password", vars["KAFKA_SASL_PASSWORD_FILE"])
	password, err := os.ReadFile(filepath.Join(dir, "kafka_sasl_password"))
	require.NoError(t, err)
	c := kafkaclient.Config{Brokers: vars["SITEWATCH_KAFKA_BROKERS"], SecurityProtocol: vars["KAFKA_SECURITY_PROTOCOL"],
		SASLMechanism: vars["KAFKA_SASL_MECHANISM"], SASLUsername: vars["KAFKA_SASL_USERNAME"],
		SASLPassword: string(password), CAPEM: vars["KAFKA_CA_PEM"]}
	require.NoError(t, c.Validate())
	require.Equal(t, "kafka-secure:9094", c.Brokers)
	require.FileExists(t, filepath.Join(vars["SITEWATCH_SECRETS_DIR"], "kafka_broker_keystore"), "the broker keystore, named as its compose secret")
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

// No password, token or URL holding one is in any service's environment:
// each is a Docker secret, a file scripts/secrets.sh makes, read through
// the variable's _FILE form. Every file a service is pointed at is a secret
// it mounts, every secret's file is one the script makes, the URLs carry
// each service's own role and password, and postgres/roles.sh creates the
// roles with the passwords of those same files.
func TestComposeSecretsComeFromFiles(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	root := repoRoot(t)
	dir := t.TempDir()
	out, err := exec.Command("bash", filepath.Join(root, "scripts", "secrets.sh"), dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	// The secure profile's broker keystore comes from scripts/tls.sh.
	out, err = exec.Command("bash", filepath.Join(root, "scripts", "tls.sh"), dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		require.NotEmpty(t, b, name)
		return string(b)
	}
	p := loadComposeEnv(t, []string{"SITEWATCH_SECRETS_DIR=" + dir}, "secure", "observability")
	require.NotEmpty(t, p.Secrets)
	for name, secret := range p.Secrets {
		require.Equal(t, filepath.Join(dir, name), secret.File, "secret %s: a file of scripts/secrets.sh or scripts/tls.sh, named as the secret", name)
		require.FileExists(t, secret.File, "scripts/secrets.sh or scripts/tls.sh makes secret %s", name)
	}
	secretish := regexp.MustCompile(`PASSWORD|TOKEN|SECRET|DATABASE_URL`)
	for _, s := range p.Services {
		mounted := map[string]bool{}
		for _, ref := range s.Secrets {
			mounted[ref.Source] = true
		}
		for key, value := range s.Environment {
			v := ""
			if value != nil {
				v = *value
			}
			u, err := url.Parse(v)
			if err == nil && u.User != nil {
				_, hasPassword := u.User.Password()
				require.False(t, hasPassword, "%s: %s holds a URL with a password", s.Name, key)
			}
			if !secretish.MatchString(key) {
				continue
			}
			require.True(t, strings.HasSuffix(key, "_FILE") || strings.HasSuffix(key, "__FILE"), "%s: %s is set in the environment; give %s_FILE", s.Name, key, key)
			if name, ok := strings.CutPrefix(v, "/run/secrets/"); ok {
				require.True(t, mounted[name], "%s: %s=%s, but the service does not mount secret %s", s.Name, key, v, name)
			} else {
				require.Equal(t, "/dev/null", v, "%s: %s names no secret", s.Name, key) // the plaintext default: no SASL password
			}
		}
	}

	// Each service's URL: its own role, with that role's password.
	for svc, role := range map[string]string{"migrate": "sitewatch", "monitor": "sitewatch_monitor", "relay": "sitewatch_relay", "sink": "sitewatch_sink"} {
		u, err := url.Parse(read(svc + "_database_url"))
		require.NoError(t, err, svc)
		require.Equal(t, role, u.User.Username(), svc)
		password, _ := u.User.Password()
		want := "postgres_password"
		if svc != "migrate" {
			want = svc + "_db_password"
		}
		require.Equal(t, read(want), password, svc)
		require.Equal(t, "postgres:5432", u.Host, svc)
	}
	pg, err := p.GetService("postgres")
	require.NoError(t, err)
	require.Equal(t, "/run/secrets/postgres_password", *pg.Environment["POSTGRES_PASSWORD_FILE"])

	// roles.sh, with a psql that records what it is asked to do, creates
	// each role with the password of its file.
	bin := t.TempDir()
	log := filepath.Join(bin, "psql.log")
	require.NoError(t, os.WriteFile(filepath.Join(bin, "psql"), []byte("#!/bin/sh\necho \"$@\" >>"+log+"\ncat >/dev/null\n"), 0o755))
	env := []string{"PATH=" + bin + ":/usr/bin:/bin", "POSTGRES_USER=sitewatch", "POSTGRES_DB=sitewatch"}
	for _, svc := range []string{"monitor", "relay", "sink"} {
		key := "SITEWATCH_" + strings.ToUpper(svc) + "_DB_PASSWORD_FILE"
		require.Equal(t, "/run/secrets/"+svc+"_db_password", *pg.Environment[key], key)
		env = append(env, key+"="+filepath.Join(dir, svc+"_db_password"))
	}
	cmd := exec.Command("sh", filepath.Join(root, "deploy", "postgres", "roles.sh"))
	cmd.Env = env
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	calls, err := os.ReadFile(log)
	require.NoError(t, err)
	for _, svc := range []string{"monitor", "relay", "sink"} {
		require.Contains(t, string(calls), "-v role=sitewatch_"+svc+" -v password="+read(svc+"_db_password")+"\n", svc)
	}
	cmd = exec.Command("sh", filepath.Join(root, "deploy", "postgres", "roles.sh"))
	cmd.Env = append(env[:3:3], "SITEWATCH_MONITOR_DB_PASSWORD_FILE="+filepath.Join(dir, "missing"))
	out, err = cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "SITEWATCH_MONITOR_DB_PASSWORD_FILE: cannot read")

	// The status page is published, so it needs its token.
	sink, err := p.GetService("sink")
	require.NoError(t, err)
	require.Equal(t, ":8080", *sink.Environment["SINK_HTTP_ADDR"])
	require.Equal(t, "/run/secrets/sink_ui_token", *sink.Environment["SINK_UI_TOKEN_FILE"])
	published := false
	for _, port := range sink.Ports {
		published = published || (port.Target == 8080 && port.HostIP == "127.0.0.1" && port.Published == "8080")
	}
	require.True(t, published, "the status page is published on the host's loopback: %+v", sink.Ports)
	require.GreaterOrEqual(t, len(read("sink_ui_token")), 16, "the sink requires 16 characters")

	// Run again: nothing changes (the database keeps matching).
	before := read("relay_database_url")
	out, err = exec.Command("bash", filepath.Join(root, "scripts", "secrets.sh"), dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, before, read("relay_database_url"))
}
