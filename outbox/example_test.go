package outbox_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"

	"github.com/sitewatch/sitewatch/outbox"
)

// A service records an order and the event announcing it in one transaction.
func Example() {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = conn.Close(ctx) }()

	tx, err := conn.Begin(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// ... the service's own writes go here, on tx ...
	err = outbox.Write(ctx, tx, outbox.Message{
		Topic:   "orders.created",
		Key:     []byte("order-42"),
		Payload: []byte(`{"order_id":42}`),
		Headers: map[string]string{"ce_type": "com.example.order.created"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tx.Commit(ctx) == nil)
}
