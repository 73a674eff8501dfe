package site

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// KindHeartbeat is heartbeat://name[?grace=D]: the monitored job reports in
// (POST /ping/<token> on a monitor's ping listener) at least once every
// interval; no ping within interval + grace is a failed check.
const KindHeartbeat = "heartbeat"

// DefaultGrace, MinGrace and MaxGrace bound a heartbeat's grace: how late
// after its interval a ping may come before the check fails.
const (
	DefaultGrace = time.Minute
	MinGrace     = time.Second
	MaxGrace     = 24 * time.Hour
)

// HeartbeatRegion is the region of every heartbeat check: a job reports to
// whichever monitor replica its ping reaches, so the check is the job's,
// not a region's.
const HeartbeatRegion = "heartbeat"

// Grace is the grace of a heartbeat:// URL (DefaultGrace when it names none
// or a bad one, which Validate refuses).
func Grace(u *url.URL) time.Duration {
	d, err := time.ParseDuration(u.Query().Get("grace"))
	if err != nil || d < MinGrace || d > MaxGrace {
		return DefaultGrace
	}
	return d
}

// checkHeartbeatURL validates heartbeat://name[?grace=D].
func checkHeartbeatURL(u *url.URL) string {
	name := u.Host
	switch {
	case u.Opaque != "" || u.User != nil || u.Port() != "" || (u.Path != "" && u.Path != "/") || u.Fragment != "":
		return "want heartbeat://name or heartbeat://name?grace=5m (a name, no port, path or credentials)"
	case name == "" || len(name) > 100 || strings.ContainsFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r))
	}):
		return fmt.Sprintf("name %q: want 1 to 100 lower-case letters, digits, '.', '_' or '-' (e.g. heartbeat://nightly-backup)", name)
	}
	for key, vs := range u.Query() {
		if key != "grace" || len(vs) != 1 {
			return fmt.Sprintf("query %q: want only grace=D (e.g. grace=10m), once", key)
		}
		if d, err := time.ParseDuration(vs[0]); err != nil || d < MinGrace || d > MaxGrace {
			return fmt.Sprintf("grace %q: want a duration from %s to %s, e.g. 10m", vs[0], MinGrace, MaxGrace)
		}
	}
	return ""
}

// NewPingToken returns a new unguessable token for a heartbeat site (192
// random bits, URL-safe) and the hash the database keeps of it.
func NewPingToken() (token string, hash []byte, err error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("generating a ping token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashPingToken(token), nil
}

// HashPingToken is the hash the database keeps of a ping token.
func HashPingToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// WellFormedPingToken reports whether token could be one NewPingToken
// made, so a ping with another costs no database query.
func WellFormedPingToken(token string) bool {
	b, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil && len(b) == 24
}
