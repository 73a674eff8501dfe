package e2e

// A monitor replica whose host vanishes — no FIN, no RST — loses its
// sites within seconds. The replica runs in a network namespace the test
// creates, talking over a veth link to a PostgreSQL of the test's own that
// listens on the link; the test takes the link down.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/db"
)

// sh runs a command and fails the test if it fails.
func sh(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %v: %s", name, args, out)
}

// netns creates a namespace linked to the host by a veth pair and returns
// its name, the host's address on the link, the namespace's address and a
// function that takes the link down.
func netns(t *testing.T) (ns, hostIP, nsIP string, cut func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2's ip is not installed")
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	ns, host, peer := "swt"+id, "swh"+id, "swn"+id
	hostIP, nsIP = fmt.Sprintf("10.231.%d.1", b[0]), fmt.Sprintf("10.231.%d.2", b[0])
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		// Root without CAP_SYS_ADMIN (some containers): the machine cannot
		// make a namespace, which is not a failure of sitewatch.
		t.Skipf("cannot create a network namespace here: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() }) // removes the veth pair too
	sh(t, "ip", "link", "add", host, "type", "veth", "peer", "name", peer)
	sh(t, "ip", "link", "set", peer, "netns", ns)
	sh(t, "ip", "addr", "add", hostIP+"/30", "dev", host)
	sh(t, "ip", "link", "set", host, "up")
	sh(t, "ip", "netns", "exec", ns, "ip", "addr", "add", nsIP+"/30", "dev", peer)
	sh(t, "ip", "netns", "exec", ns, "ip", "link", "set", peer, "up")
	sh(t, "ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	return ns, hostIP, nsIP, func() { sh(t, "ip", "link", "set", host, "down") }
}

// privatePostgres starts a PostgreSQL of the test's own, listening on
// addr, and returns its URL. It runs as the postgres user, which the
// Debian package creates.
func privatePostgres(t *testing.T, addr string) string {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(bins) == 0 {
		t.Skip("no PostgreSQL server binaries under /usr/lib/postgresql")
	}
	bin := filepath.Dir(bins[len(bins)-1])
	pg, err := user.Lookup("postgres")
	require.NoError(t, err)
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	dir, err := os.MkdirTemp("", "sitewatch-pg-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chown(dir, uid, gid))
	asPostgres := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		return cmd
	}
	data := filepath.Join(dir, "data")
	out, err := asPostgres("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8").CombinedOutput()
	require.NoError(t, err, "initdb: %s", out)
	// The link's addresses may connect (the test's own server, on its own link).
	hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = fmt.Fprintf(hba, "host all all %s/24 trust\n", addr)
	require.NoError(t, err)
	require.NoError(t, hba.Close())
	port := strconv.Itoa(56000 + int(time.Now().UnixNano()%1000))
	srv := asPostgres("postgres", "-D", data, "-p", port, "-k", dir, "-c", "listen_addresses="+addr, "-c", "fsync=off")
	log := &syncBuffer{}
	srv.Stdout, srv.Stderr = log, log
	require.NoError(t, srv.Start())
	t.Cleanup(func() {
		_ = srv.Process.Signal(syscall.SIGINT) // fast shutdown
		_ = srv.Wait()
		if t.Failed() {
			t.Logf("---- private postgres ----\n%s", log.String())
		}
	})
	url := "postgres://postgres@" + net.JoinHostPort(addr, port) + "/postgres?sslmode=disable"
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return false
		}
		_ = conn.Close(ctx)
		return true
	}, 30*time.Second, 100*time.Millisecond, "private postgres answers")
	return url
}

func TestVanishedReplicaLosesItsSitesInSeconds(t *testing.T) {
	ns, hostIP, nsIP, cut := netns(t)
	dbURL := privatePostgres(t, hostIP)
	require.NoError(t, db.Migrate(context.Background(), dbURL, zap.NewNop()))
	env := []string{"DATABASE_URL=" + dbURL, "LOG_FORMAT=console"}
	// Connection refused everywhere: cheap checks, ownership is the point.
	importSites(t, env, "http://127.0.0.1:1", 200, "1s", "")

	args := []string{"-region", "local", "-log-format", "console", "-dead-peer", "3s", "-rebalance-interval", "500ms"}
	here := startReplica(t, env, "local", args[4:]...)
	// The other replica runs in the namespace: its only way out is the link.
	gone := &replica{ops: net.JoinHostPort(nsIP, "9101")}
	gone.process = &process{name: "monitor (netns)", out: &syncBuffer{}, done: make(chan error, 1)}
	gone.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, filepath.Join(binDir, "monitor"), "run", "-ops-addr", gone.ops}, args...)...)
	gone.cmd.Env = append(append(os.Environ(), loopbackAllowed), env...)
	gone.cmd.Stdout, gone.cmd.Stderr = gone.out, gone.out
	require.NoError(t, gone.cmd.Start())
	go func() { gone.done <- gone.cmd.Wait() }()
	t.Cleanup(func() {
		_ = gone.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("---- monitor in the namespace ----\n%s", gone.out.String())
		}
	})

	waitReady(t, here, gone)
	require.Eventually(t, func() bool {
		h, g := here.sites(), gone.sites()
		return h > 0 && g > 0 && h+g == 200
	}, 20*time.Second, 100*time.Millisecond, "the two replicas share the sites")
	t.Logf("before the cut: %d sites here, %d in the namespace", here.sites(), gone.sites())

	cut()
	cutAt := time.Now()
	require.Eventually(t, func() bool { return here.sites() == 200 }, 30*time.Second, 50*time.Millisecond,
		"the replica that lost its link loses its sites")
	took := time.Since(cutAt)
	t.Logf("the vanished replica's sites moved in %s", took.Round(10*time.Millisecond))
	require.Less(t, took, 15*time.Second, "within seconds, not TCP's two hours")
	here.stop(t, 30*time.Second)
}
