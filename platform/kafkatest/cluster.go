package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sitewatch/sitewatch/platform/kafkaclient"
)

// Cluster is the three-node KRaft cluster of scripts/kafka.sh (each node a
// broker and a controller, on loopback), shared by the tests that need one
// and started by the first of them. A test may kill, stop or restart its
// nodes; Cluster starts and resumes them all again when the test ends.
type Cluster struct {
	Brokers string // bootstrap list of the three brokers

	t testing.TB
}

// StartCluster starts the cluster unless it runs, and waits until every
// node answers.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	Config(t) // skips under -short
	if _, err := exec.LookPath("java"); err != nil {
		t.Fatal("java is needed for the Kafka cluster (make test installs it: scripts/kafka.sh up)")
	}
	c := &Cluster{t: t}
	out, err := c.script("brokers")
	if err != nil {
		t.Fatal(err)
	}
	c.Brokers = strings.TrimSpace(out)
	c.Up()
	purge.Do(c.purgeTestTopics)
	t.Cleanup(func() {
		for n := 1; n <= 3; n++ {
			if pid, ok := c.pid(n); ok {
				_ = syscall.Kill(pid, syscall.SIGCONT)
			}
		}
		if _, err := c.script("up"); err != nil {
			t.Errorf("restoring the Kafka cluster: %v", err)
		}
	})
	return c
}

// purge runs once per test binary: the cluster outlives test runs.
var purge sync.Once

// purgeTestTopics deletes the topics earlier runs left (an interrupted
// test, a topic a service created): every partition is work for a node
// that restarts.
func (c *Cluster) purgeTestTopics() {
	admin, err := kafka.NewAdminClient(c.Config().ConfigMap(nil))
	if err != nil {
		return
	}
	defer admin.Close()
	md, err := admin.GetMetadata(nil, true, 10_000)
	if err != nil {
		return
	}
	var old []string
	for name := range md.Topics {
		if strings.HasPrefix(name, "test.") {
			old = append(old, name)
		}
	}
	if len(old) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = admin.DeleteTopics(ctx, old)
}

// Config is the plaintext client configuration of the cluster.
func (c *Cluster) Config() kafkaclient.Config {
	return kafkaclient.Config{Brokers: c.Brokers, SecurityProtocol: "plaintext"}
}

// Up starts every node that is not running and waits for all of them.
func (c *Cluster) Up() {
	c.t.Helper()
	if _, err := c.script("up"); err != nil {
		c.t.Fatal(err)
	}
}

// PID is node n's broker process (1..3).
func (c *Cluster) PID(n int) int {
	c.t.Helper()
	pid, ok := c.pid(n)
	if !ok {
		c.t.Fatalf("Kafka node %d is not running", n)
	}
	return pid
}

func (c *Cluster) pid(n int) (int, bool) {
	out, err := c.script("pids")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == strconv.Itoa(n) {
			pid, err := strconv.Atoi(f[1])
			return pid, err == nil
		}
	}
	return 0, false
}

// Kill9 kills node n with SIGKILL and waits until it is gone.
func (c *Cluster) Kill9(n int) {
	c.t.Helper()
	pid := c.PID(n)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill -9 Kafka node %d: %v", n, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			c.t.Fatalf("Kafka node %d (pid %d) outlived SIGKILL", n, pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops node n gracefully (SIGTERM: a controlled shutdown moves its
// leaderships first) and waits until it is gone.
func (c *Cluster) Stop(n int) {
	c.t.Helper()
	pid := c.PID(n)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		c.t.Fatalf("stopping Kafka node %d: %v", n, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			c.t.Fatalf("Kafka node %d (pid %d) did not stop within 60 s of SIGTERM", n, pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// InSync says whether every partition of topic has all its replicas in
// sync.
func (c *Cluster) InSync(topic string) (bool, error) {
	admin, err := kafka.NewAdminClient(c.Config().ConfigMap(nil))
	if err != nil {
		return false, err
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := admin.DescribeTopics(ctx, kafka.NewTopicCollectionOfTopicNames([]string{topic}))
	if err != nil {
		return false, err
	}
	for _, p := range res.TopicDescriptions[0].Partitions {
		if len(p.Isr) < len(p.Replicas) {
			return false, nil
		}
	}
	return true, nil
}

// Signal sends sig (SIGSTOP, SIGCONT) to node n.
func (c *Cluster) Signal(n int, sig syscall.Signal) {
	c.t.Helper()
	if err := syscall.Kill(c.PID(n), sig); err != nil {
		c.t.Fatalf("signal %v to Kafka node %d: %v", sig, n, err)
	}
}

// NodeOf returns the node (1..3) by its broker's port in a "host:port"
// address as the cluster's metadata gives it.
func (c *Cluster) NodeOf(addr string) int {
	for i, b := range strings.Split(c.Brokers, ",") {
		if b == addr {
			return i + 1
		}
	}
	return 0
}

// NewTopic creates a uniquely named topic on the cluster with three
// replicas, two in sync for a write, deleted when the test ends.
func (c *Cluster) NewTopic(partitions int) string {
	c.t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	topic := "test." + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kafkaclient.EnsureTopic(ctx, c.Config(), topic, partitions); err != nil {
		c.t.Fatalf("creating a topic on the cluster: %v", err)
	}
	c.DeleteAtEnd(topic)
	return topic
}

// DeleteAtEnd deletes topic (one a service created, say) when the test
// ends.
func (c *Cluster) DeleteAtEnd(topic string) {
	c.t.Cleanup(func() {
		admin, err := kafka.NewAdminClient(c.Config().ConfigMap(nil))
		if err != nil {
			return
		}
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = admin.DeleteTopics(ctx, []string{topic})
	})
}

// Leaders returns the node leading each partition of topic, -1 for none.
func (c *Cluster) Leaders(topic string) ([]int, error) {
	admin, err := kafka.NewAdminClient(c.Config().ConfigMap(nil))
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := admin.DescribeTopics(ctx, kafka.NewTopicCollectionOfTopicNames([]string{topic}))
	if err != nil {
		return nil, err
	}
	if len(res.TopicDescriptions) != 1 || res.TopicDescriptions[0].Error.Code() != kafka.ErrNoError {
		return nil, fmt.Errorf("describing topic %s: %v", topic, res.TopicDescriptions)
	}
	out := make([]int, len(res.TopicDescriptions[0].Partitions))
	for _, p := range res.TopicDescriptions[0].Partitions {
		out[p.Partition] = -1
		if p.Leader != nil {
			out[p.Partition] = p.Leader.ID
		}
	}
	return out, nil
}

// Controller returns the node that is the active KRaft controller (the
// quorum's leader; DescribeCluster names any broker in KRaft mode).
func (c *Cluster) Controller() (int, error) {
	out, err := c.script("leader")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(out))
}

func (c *Cluster) script(args ...string) (string, error) {
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("bash", append([]string{filepath.Join(filepath.Dir(file), "..", "..", "scripts", "kafka.sh"), "cluster"}, args...)...)
	for _, kv := range os.Environ() {
		// The script would only wait for KAFKA_BROKERS' cluster, not run its own.
		if !strings.HasPrefix(kv, "KAFKA_BROKERS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("scripts/kafka.sh cluster %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Kafka is one of the Kafkas a benchmark compares: its name, its clients'
// configuration and a maker of topics deleted when the test ends.
type Kafka struct {
	Name     string
	Config   kafkaclient.Config
	NewTopic func(partitions int) string
}

// SingleAndCluster is the single development broker and the three-broker
// cluster (StartCluster: topics replicated three times, two in sync), in
// that order: for measuring the same work on both in one run.
func SingleAndCluster(t testing.TB) []Kafka {
	c := StartCluster(t)
	return []Kafka{
		{Name: "brokers=1", Config: Config(t), NewTopic: func(p int) string { return NewTopic(t, p) }},
		{Name: "brokers=3", Config: c.Config(), NewTopic: c.NewTopic},
	}
}
