package e2e

import (
	"io"
	"net/http"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/platform/porttest"
)

// Pings to a replica killed with kill -9 while they are in flight: every
// ping answered 200 is a check in the outbox (recorded in the transaction
// that wrote it, before the answer), and a job retrying a ping the dead
// replica never answered on the other replica is recorded there; nothing
// answered is lost, and a ping is recorded twice at most when its answer
// was what the kill cut off.
func TestHeartbeatPingsThroughAReplicaKill9(t *testing.T) {
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	topic := kafkatest.NewTopic(t, 3)
	env := []string{"DATABASE_URL=" + dbURL, "LOG_FORMAT=console"}
	code, out := run(t, env, "monitor", "sites", "add", "heartbeat://busy-job", "--interval", "1h", "--topic", topic)
	require.Equal(t, 0, code, out)
	m := regexp.MustCompile(`ping token (\S+)`).FindStringSubmatch(out)
	require.Len(t, m, 2, out)
	token := m[1]

	addrs := []string{porttest.Addr(t), porttest.Addr(t)}
	victim := start(t, "monitor", env, "run", "-ops-addr", porttest.Addr(t), "-ping-addr", addrs[0])
	survivor := start(t, "monitor", env, "run", "-ops-addr", porttest.Addr(t), "-ping-addr", addrs[1])
	client := &http.Client{Timeout: 5 * time.Second}
	ping := func(addr string) bool {
		resp, err := client.Post("http://"+addr+"/ping/"+token, "text/plain", nil)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for _, a := range addrs {
		require.Eventually(t, func() bool { return ping(a) }, 30*time.Second, 50*time.Millisecond, "the ping listener at %s answers", a)
	}

	// Four jobs ping the victim as fast as they can; one that gets no
	// answer retries on the survivor, as curl --retry behind a balancer.
	var answered, cut atomic.Int64
	answered.Store(2) // the two pings above
	stop := make(chan struct{})
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if ping(addrs[0]) {
					answered.Add(1)
					continue
				}
				cut.Add(1)
				if ping(addrs[1]) {
					answered.Add(1)
				}
			}
		}()
	}
	require.Eventually(t, func() bool { return answered.Load() >= 200 }, 30*time.Second, 10*time.Millisecond, "pings flow")
	victim.kill9()
	require.Eventually(t, func() bool { return cut.Load() >= 4 }, 30*time.Second, 10*time.Millisecond, "the jobs see the victim gone")
	before := answered.Load()
	require.Eventually(t, func() bool { return answered.Load() >= before+100 }, 30*time.Second, 10*time.Millisecond,
		"the jobs' retries reach the survivor")
	close(stop)
	for range 4 {
		<-done
	}
	survivor.stop(t, 20*time.Second)

	recorded := int64(count(t, pool, "SELECT count(*) FROM outbox WHERE topic_name = $1", topic))
	t.Logf("heartbeat pings: %d answered 200, %d not answered by the killed replica (each retried on the other), %d recorded", answered.Load(), cut.Load(), recorded)
	require.GreaterOrEqual(t, recorded, answered.Load(), "every ping answered 200 is recorded")
	require.LessOrEqual(t, recorded, answered.Load()+cut.Load(), "a ping is recorded twice only when the kill cut off its answer")
}
