/**
 * PLACEHOLDER guest agent (the real one replaces this file). Bundled by src/guest/system-image-bundle.ts
 * to /agent/agent.js of the system image and run by /sbin/init (src/guest/agent-init.sh) as
 * `node /agent/agent.js`. It proves the guest userland works: prints a ready line with node's version,
 * runs `crun --version`, then idles so init does not restart it.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** The line the system-image checks wait for on the serial console. */
export const PLACEHOLDER_READY = 'hypercore-agent: placeholder ready';

function uptime(): string {
  try {
    return readFileSync('/proc/uptime', 'utf8').split(' ')[0] ?? '?';
  } catch {
    return '?';
  }
}

console.log(`${PLACEHOLDER_READY} node=${process.version} pid=${process.pid} uptime=${uptime()}`);
execFile('crun', ['--version'], { timeout: 10_000 }, (err, stdout) => {
  if (err) console.log(`hypercore-agent: crun failed: ${err.message}`);
  else console.log(`hypercore-agent: crun ${stdout.split('\n')[0] ?? ''} uptime=${uptime()}`);
});
// Idle: an interval keeps the event loop (and the process) alive.
setInterval(() => undefined, 1 << 30);
