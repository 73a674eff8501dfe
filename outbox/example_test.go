package outbox_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"

	"github.com/sitewatch/sitewatch/outbox"
)

// A service records an order and the event announcing it in one
// transaction; a relay publishes the event to Kafka once it commits.
// (Runs against DATABASE_URL, in a schema of its own that it drops.)
func Example() {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = conn.Close(ctx) }()
	_, err = conn.Exec(ctx, `DROP SCHEMA IF EXISTS outbox_example CASCADE; CREATE SCHEMA outbox_example;
		SET search_path = outbox_example; CREATE TABLE orders (id bigint PRIMARY KEY, total numeric)`)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _, _ = conn.Exec(ctx, "DROP SCHEMA outbox_example CASCADE") }()

	// Once per database: the outbox table, its indexes and notify trigger.
	if _, err := conn.Exec(ctx, outbox.DDL); err != nil {
		fmt.Println(err)
		return
	}

	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO orders VALUES (42, 99.90)"); err != nil {
			return err
		}
		return outbox.Write(ctx, tx, outbox.Message{
			Topic:   "orders.created",
			Key:     []byte("order-42"), // one key, one lane: a key's messages keep their order
			Payload: []byte(`{"order_id":42,"total":"99.90"}`),
			Headers: map[string]string{"ce_type": "com.example.order.created", "content-type": "application/json"},
		})
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	var topic, key string
	var published bool
	err = conn.QueryRow(ctx, "SELECT topic_name, convert_from(msg_key, 'UTF8'), published FROM outbox").Scan(&topic, &key, &published)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(topic, key, "published:", published)
	// Output: orders.created order-42 published: false
}
