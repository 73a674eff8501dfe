// Package outbox is the writing half of a transactional outbox: a service
// calls Write inside its own database transaction, so its state change and
// the messages announcing it commit or roll back together. A relay (see
// services/relay) later publishes the rows to Kafka.
//
// The package depends on pgx only; it knows nothing about Kafka.
//
// Apply DDL to your database once to create the table, or use sitewatch's
// migrations. The table is partitioned by id ranges: the relay drops a
// partition whole once its rows are published and past the retention, so
// the table stays small without depending on vacuum.
package outbox
