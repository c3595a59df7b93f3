#!/usr/bin/env bash
# The test suite: sets up the host (packages, build, guest kernel), then runs unit and e2e tests.
# Run as root: the e2e tests boot real microVMs with QEMU.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
npm test
