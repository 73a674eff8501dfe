package kafkatest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/platform/kafkaclient"
)

// topicLayout is a topic's replicas per partition and min.insync.replicas.
func topicLayout(t *testing.T, cfg kafkaclient.Config, topic string) (replicas []int, minInsync string) {
	t.Helper()
	admin, err := kafka.NewAdminClient(cfg.ConfigMap(nil))
	require.NoError(t, err)
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := admin.DescribeTopics(ctx, kafka.NewTopicCollectionOfTopicNames([]string{topic}))
	require.NoError(t, err)
	for _, p := range d.TopicDescriptions[0].Partitions {
		replicas = append(replicas, len(p.Replicas))
	}
	res, err := admin.DescribeConfigs(ctx, []kafka.ConfigResource{{Type: kafka.ResourceTopic, Name: topic}})
	require.NoError(t, err)
	return replicas, res[0].Config["min.insync.replicas"].Value
}

// The topics sitewatch creates: three replicas, two in sync for a write,
// on a cluster of three; one of each on the single development broker.
func TestTopicsAreReplicatedOnACluster(t *testing.T) {
	c := StartCluster(t)
	topic := c.NewTopic(3)
	replicas, minInsync := topicLayout(t, c.Config(), topic)
	require.Equal(t, []int{3, 3, 3}, replicas)
	require.Equal(t, "2", minInsync)

	single := NewTopic(t, 2)
	replicas, minInsync = topicLayout(t, Config(t), single)
	require.Equal(t, []int{1, 1}, replicas, "fitted to one broker")
	require.Equal(t, "1", minInsync)

	// Set by sitewatch, not left to the brokers' defaults (which are 3 and
	// 2 on this cluster): a layout asked for is what the topic gets,
	// fitted to the brokers there are.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, x := range []struct {
		spec      kafkaclient.Topic
		replicas  int
		minInsync string
	}{{kafkaclient.Topic{Partitions: 1, Replication: 2, MinInsync: 1}, 2, "1"}, {kafkaclient.Topic{Partitions: 1, Replication: 5, MinInsync: 5}, 3, "2"}} {
		name := topic + "-" + strconv.Itoa(x.spec.Replication)
		require.NoError(t, kafkaclient.CreateTopic(ctx, c.Config(), name, x.spec))
		c.DeleteAtEnd(name)
		replicas, minInsync = topicLayout(t, c.Config(), name)
		require.Equal(t, []int{x.replicas}, replicas, "%+v", x.spec)
		require.Equal(t, x.minInsync, minInsync, "%+v", x.spec)
	}

	leaders, err := c.Leaders(topic)
	require.NoError(t, err)
	require.Len(t, leaders, 3)
	controller, err := c.Controller()
	require.NoError(t, err)
	require.Contains(t, []int{1, 2, 3}, controller)
}
