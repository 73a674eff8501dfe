#!/usr/bin/env bash
# promtool for the alert-rule tests (e2e/observability_test.go): installs the
# Debian package prometheus when promtool is missing (as root, like the other
# scripts' packages; otherwise says what to install).
# The package also holds the Prometheus server and may start it as a
# service; only promtool is wanted, so a server this install brought up is
# stopped and disabled again. A promtool already on PATH is left alone, and so
# is a Prometheus that was installed before.
set -euo pipefail
# shellcheck source=scripts/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v promtool >/dev/null 2>&1 && exit 0
need promtool prometheus
if [[ -d /run/systemd/system ]]; then
  systemctl disable --now prometheus.service >>"$CACHE/apt.log" 2>&1 || true
elif [[ -x /etc/init.d/prometheus ]]; then
  /etc/init.d/prometheus stop >>"$CACHE/apt.log" 2>&1 || true
  update-rc.d prometheus disable >>"$CACHE/apt.log" 2>&1 || true
fi
