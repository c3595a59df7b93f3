/** Facts about the host the daemon runs on. */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

export function hostCpuCount(): number {
  return availableParallelism();
}

/**
 * The host's TSC frequency in kHz, from /proc/cpuinfo ("cpu MHz"). Under TCG the guest TSC runs
 * at the host's rate, and a microvm guest needs it on its command line to skip calibration.
 */
export function hostTscKhz(cpuinfo = readCpuinfo()): number | undefined {
  const match = /^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo);
  if (!match) return undefined;
  const khz = Math.round(Number.parseFloat(match[1]!) * 1000);
  return Number.isFinite(khz) && khz > 0 ? khz : undefined;
}

function readCpuinfo(): string {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}
