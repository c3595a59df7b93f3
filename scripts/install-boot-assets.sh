#!/usr/bin/env bash
# Installs Hypercore's default guest boot assets (Debian cloud kernel as vmlinuz and as the ELF
# vmlinux extracted from it with lz4, stage-1 initramfs +
# manifest.json) into --boot-dir DIR, else $HYPERCORE_BOOT_DIR, else /var/lib/hypercore/boot.
# Needs a built tree (npm run build) and apt's package lists; it runs `apt-get update` once when
# apt does not know the kernel metapackage yet. Safe to re-run: does nothing when assets are current.
#   scripts/install-boot-assets.sh [--boot-dir DIR] [--force]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
entry="$root/dist/src/guest/install-boot-assets.js"
if [ ! -f "$entry" ]; then
  echo "install-boot-assets.sh: $entry is missing; run \`npm run build\` first" >&2
  exit 1
fi
if ! LC_ALL=C apt-cache policy linux-image-cloud-amd64 2>/dev/null | grep -E '^ +Candidate: [0-9]' >/dev/null; then
  echo "install-boot-assets.sh: apt does not know linux-image-cloud-amd64 yet; running apt-get update" >&2
  apt-get update -qq
fi
exec node "$entry" "$@"
