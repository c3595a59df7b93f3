#!/usr/bin/env bash
# Installs everything Hypercore needs on a Debian/Ubuntu host and builds it. Run as root.
# Safe to re-run: each step skips what is already in place.
#   1. Debian packages: those of every program in scripts/host-programs.json, then a check that each is on PATH
#   2. npm dependencies (exact versions from package-lock.json), the TypeScript build, and the
#      containerd shim (bin/containerd-shim-hypercore-v2) linked into /usr/local/bin
#   3. the default guest kernel (Debian's cloud kernel, unpacked, not installed) + stage-1 initramfs
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages and a guest kernel under /var/lib/hypercore)" >&2
  exit 1
fi

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "setup.sh: Hypercore needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# One list names every program the code, tests and benchmarks run, with its Debian package.
mapfile -t packages < <(node -e '
  const l = require("./scripts/host-programs.json");
  console.log([...new Set([...l.programs, ...l.packages].map((p) => p.package))].sort().join("\n"));')
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'install ok installed' >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
node scripts/check-host-programs.mjs

# npm ci only when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build

# containerd finds the runtime io.containerd.hypercore.v2 as containerd-shim-hypercore-v2 on its PATH.
ln -sfn "$PWD/bin/containerd-shim-hypercore-v2" /usr/local/bin/containerd-shim-hypercore-v2

scripts/install-boot-assets.sh
