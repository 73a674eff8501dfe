#!/usr/bin/env bash
# Headless Chromium for the status page's browser test
# (services/sink/internal/status/browser_test.go): installs Debian's
# chromium when it is missing (as root, like the other scripts' packages;
# otherwise says what to install).
set -euo pipefail
# shellcheck source=scripts/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need chromium chromium
