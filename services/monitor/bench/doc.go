// Package bench measures each kind of check of sitewatch's prober next to
// blackbox_exporter's matching prober, in one run, against the same
// servers on loopback: `make bench` (BenchmarkKinds). It is a module of its
// own so blackbox_exporter's dependencies stay out of the monitor's.
package bench
