#!/usr/bin/env bash
# The main job, end to end: set up the host, start hypercored, spawn the microVM described by
# examples/hac.toml, and show it running with its console output. Run as root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh

export PATH="$PWD/bin:$PATH"
root=${HYPERCORE_ROOT:-/var/lib/hypercore}
run=${HYPERCORE_RUN_DIR:-/run/hypercore}
socket=${HYPERCORE_SOCKET:-$run/hypercore.sock}

if ! hypercore ls >/dev/null 2>&1; then
  mkdir -p "$root"
  echo "starting hypercored (log: $root/hypercored.log)"
  nohup hypercored >>"$root/hypercored.log" 2>&1 &
  for _ in $(seq 100); do [ -S "$socket" ] && hypercore ls >/dev/null 2>&1 && break; sleep 0.1; done
fi

# Re-running the demo replaces the previous demo VM.
hypercore inspect demo >/dev/null 2>&1 && hypercore rm -f demo >/dev/null

# The example's root disk: a tiny busybox system whose init prints a marker line (rebuilt each
# time, in well under a second, so it always matches this checkout).
node dist/src/guest/build-demo-rootfs.js examples/build/demo-rootfs.ext4

id=$(hypercore spawn --hac examples/hac.toml)
echo "waiting for the guest to boot (software emulation takes a few seconds)..."
for _ in $(seq 120); do hypercore logs "$id" | grep 'hypercore-demo: guest is up' >/dev/null && break; sleep 0.5; done

echo; echo "== hypercore ls"; hypercore ls
echo; echo "== hypercore logs demo (serial console)"; hypercore logs "$id" | grep -v '^\[ *[0-9]' || true
echo; echo "The VM keeps running at $(hypercore inspect --json demo | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).network?.ip ?? "(no network)"))'). Next: hypercore logs -f demo | hypercore stop demo | hypercore rm demo"
