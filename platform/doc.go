// Package platform is the root of what every sitewatch service shares,
// written once: configuration from flags and environment (config), the zap
// logger (logging), the ops HTTP server with /healthz, /readyz and /metrics
// (ops), Kafka client settings (kafkaclient), the check event contract
// (checkevent) and test helpers for a real broker (kafkatest).
package platform
