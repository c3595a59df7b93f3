/**
 * `hypercore version`: this client's version, then what the daemon reports (its own version, each
 * hypervisor's, the default guest kernel's). Without a daemon the client's line still prints and
 * the command fails with the reason.
 */
import { asHypercoreError } from '../core/errors.js';
import type { HypercoreClient, VersionResponse as VersionReport } from '../../sdk/src/index.js';
import { HYPERCORE_VERSION } from '../core/version.js';

export function versionText(report: VersionReport): string {
  const lines = [`Daemon:        hypercored ${report.version} (node ${report.nodeVersion})`];
  for (const p of report.providers) {
    lines.push(`VMM ${p.name.padEnd(10)} ${p.usable ? (p.version ?? '?') : `unusable${p.version ? ` (${p.version})` : ''}`}: ${p.detail}`);
  }
  const k = report.guestKernel;
  lines.push(`Guest kernel:  ${k.version ? `${k.version} (${k.package ?? '?'} ${k.packageVersion ?? '?'})` : `unknown: ${k.detail ?? 'no manifest'}`}${k.bootDir ? ` in ${k.bootDir}` : ''}`);
  return lines.join('\n');
}

/**
 * Prints the versions; rejects (after printing the client's) when the daemon could not be asked.
 * `reported` tells the SDK's error in the CLI's words.
 */
export async function printVersions(api: HypercoreClient, json: boolean, reported: (err: unknown) => unknown): Promise<void> {
  const client = { version: HYPERCORE_VERSION, nodeVersion: process.version };
  let report: VersionReport;
  try {
    report = await api.version();
  } catch (err) {
    const e = asHypercoreError(reported(err));
    if (json) process.stdout.write(`${JSON.stringify({ client, daemon: null, error: { code: e.code, message: e.message } }, null, 2)}\n`);
    else process.stdout.write(`Client:        hypercore ${client.version} (node ${client.nodeVersion})\n`);
    throw e;
  }
  if (json) process.stdout.write(`${JSON.stringify({ client, daemon: report }, null, 2)}\n`);
  else process.stdout.write(`Client:        hypercore ${client.version} (node ${client.nodeVersion})\n${versionText(report)}\n`);
}
