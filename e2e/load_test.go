package e2e

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/checkevent"
)

// loadSites is how many sites the load writes checks of, in turn, with ids
// from loadSiteBase + 1: none of them in the sites table, so none is
// mistaken for a site a test's monitor checks.
const (
	loadSites    = 30
	loadSiteBase = 1_000_000
)

// load writes check events into the outbox, as the monitor does, at about
// 1,000 a second: a transaction of 10 every 10 ms.
type load struct {
	pool  *pgxpool.Pool
	topic string

	mu      sync.Mutex
	written map[string]time.Time // event id: when its transaction committed
	unsure  int                  // transactions whose commit failed: written or not
	stop    chan struct{}
	done    chan struct{}
}

// startLoad writes into pool's outbox for topic until halt.
func startLoad(t *testing.T, pool *pgxpool.Pool, topic string) *load {
	l := &load{pool: pool, topic: topic, written: map[string]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	go l.write()
	t.Cleanup(func() {
		select {
		case <-l.stop:
		default:
			l.halt()
		}
	})
	return l
}

// halt stops the load and returns the events whose commit succeeded.
func (l *load) halt() map[string]time.Time {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.written
}

func (l *load) write() {
	defer close(l.done)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		msgs := make([]outbox.Message, 10)
		for j := range msgs {
			site := int64(loadSiteBase + i%loadSites + 1)
			i++
			c := checkevent.Check{SchemaVersion: checkevent.SchemaVersion, Region: "local", EventID: uuid.NewString(), SiteID: site,
				URL: "https://site" + strconv.FormatInt(site, 10) + ".example/", CheckedAt: time.Now().UTC(), StatusCode: 200, DurationMS: 3}
			v, _ := json.Marshal(c)
			msgs[j] = outbox.Message{EventID: c.EventID, Topic: l.topic, Key: []byte(strconv.FormatInt(site, 10)), Payload: v}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error { return outbox.Write(ctx, tx, msgs...) })
		cancel()
		now := time.Now()
		l.mu.Lock()
		if err != nil {
			l.unsure++ // a commit whose answer was lost may have been written
		} else {
			for _, m := range msgs {
				l.written[m.EventID] = now
			}
		}
		l.mu.Unlock()
	}
}
