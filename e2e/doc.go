// Package e2e runs the real monitor, relay and sink binaries against the
// real PostgreSQL and Kafka and checks what arrives in the stats table.
package e2e
