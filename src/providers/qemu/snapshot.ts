/**
 * QEMU 7.2 snapshots of a `-M microvm` guest whose RAM is a shared file (memory-backend-file,
 * share=on). Saving: with the migration capability x-ignore-shared, `migrate "exec:cat > state"`
 * writes only the device state (tens of KB, ~15 ms for 256 MiB of RAM) because RAM stays in its
 * file, which is then copied while the guest is still paused. 7.2 has no `file:` URI, hence exec.
 * Restoring: the same command line with `-incoming defer` and the memory file mapped share=off
 * (private copy-on-write), then `migrate-incoming "exec:cat state"`: ~0.1 s from QEMU's start to
 * a running guest, against ~0.7 s to load a full RAM stream. Migration across QEMU versions is not
 * supported for microvm, so the version is recorded and checked.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ProviderFailedError, SnapshotIncompatibleError, asHypercoreError } from '../../core/errors.js';
import type { VmmSnapshot } from '../../core/ports.js';
import { QmpClient } from './qmp-client.js';

/** Files a QEMU snapshot directory holds. */
export const SNAPSHOT_FILES = { state: 'state', memory: 'memory', notes: 'qemu.json' } as const;

/** What a restore must match besides the version: the accelerator (KVM and TCG CPU state differ) and the RAM size. */
export interface QemuSnapshotNotes {
  version: string;
  accel: 'kvm' | 'tcg';
  memoryMib: number;
}

const MIGRATION_TIMEOUT_MS = 120_000;
const POLL_MS = 2;

/** A path as one single-quoted word of /bin/sh (QEMU runs exec: URIs through it). */
export function shellQuote(path: string): string {
  return `'${path.replaceAll("'", `'\\''`)}'`;
}

const IGNORE_SHARED = { capabilities: [{ capability: 'x-ignore-shared', state: true }] };

/** The running QEMU's version in the form `--version` prints it after "QEMU emulator version ". */
export async function runningVersion(qmp: QmpClient): Promise<string> {
  const v = await qmp.execute<{ qemu: { major: number; minor: number; micro: number }; package?: string }>('query-version');
  // `--version` prints the package version in parentheses after the number; query-version gives it bare.
  const pkg = (v.package ?? '').trim();
  return `${v.qemu.major}.${v.qemu.minor}.${v.qemu.micro}${pkg ? ` (${pkg})` : ''}`;
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Saves a paused guest's device state into `dir/state` (RAM stays in its shared file). */
export async function saveDeviceState(qmp: QmpClient, dir: string): Promise<void> {
  const status = (await qmp.queryStatus()).status;
  // A guest left paused by an earlier snapshot: QEMU refuses a second migrate until it ran again.
  if (status === 'postmigrate') {
    await qmp.execute('cont');
    await qmp.execute('stop');
  } else if (status !== 'paused') {
    throw new ProviderFailedError(`QEMU must be paused to save a snapshot, but its status is ${status}`);
  }
  const statePath = join(dir, SNAPSHOT_FILES.state);
  // Created here 0600: cat, run by QEMU with its umask, would make it group-readable.
  await writeFile(statePath, '', { mode: 0o600 });
  await qmp.execute('migrate-set-capabilities', IGNORE_SHARED);
  await qmp.execute('migrate', { uri: `exec:cat > ${shellQuote(statePath)}` });
  const deadline = Date.now() + MIGRATION_TIMEOUT_MS;
  for (;;) {
    const m = await qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
    if (m.status === 'completed') return;
    if (m.status === 'failed' || m.status === 'cancelled') throw new ProviderFailedError(`QEMU could not save the device state: ${m['error-desc'] ?? m.status}`);
    if (Date.now() > deadline) throw new ProviderFailedError(`QEMU did not finish saving the device state within ${MIGRATION_TIMEOUT_MS / 1000} s`);
    await sleep(POLL_MS);
  }
}

/** Loads `dir/state` into a QEMU started with `-incoming defer`, and lets the guest run. */
export async function loadDeviceState(qmp: QmpClient, dir: string): Promise<void> {
  await qmp.execute('migrate-set-capabilities', IGNORE_SHARED);
  await qmp.execute('migrate-incoming', { uri: `exec:cat ${shellQuote(join(dir, SNAPSHOT_FILES.state))}` });
  const deadline = Date.now() + MIGRATION_TIMEOUT_MS;
  for (;;) {
    const { status } = await qmp.queryStatus();
    if (status === 'running') return;
    // Without autostart the guest waits paused once the state is in.
    if (status === 'paused') return void (await qmp.execute('cont'));
    if (status !== 'inmigrate') throw new ProviderFailedError(`QEMU could not load the snapshot's device state (status ${status})`);
    if (Date.now() > deadline) throw new ProviderFailedError(`QEMU did not load the snapshot's device state within ${MIGRATION_TIMEOUT_MS / 1000} s`);
    await sleep(POLL_MS);
  }
}

export async function writeNotes(dir: string, notes: QemuSnapshotNotes): Promise<void> {
  await writeFile(join(dir, SNAPSHOT_FILES.notes), `${JSON.stringify(notes)}\n`, { mode: 0o600 });
}

/** Refuses a snapshot this QEMU cannot restore, naming what differs. */
export async function checkCompatible(dir: string, snapshot: VmmSnapshot, here: { version: string; accel: 'kvm' | 'tcg'; memoryMib: number }): Promise<void> {
  let notes: QemuSnapshotNotes;
  try {
    notes = JSON.parse(await readFile(join(dir, SNAPSHOT_FILES.notes), 'utf8')) as QemuSnapshotNotes;
  } catch (err) {
    throw new SnapshotIncompatibleError(`the snapshot in ${dir} has no readable QEMU notes (${asHypercoreError(err).message})`);
  }
  if (snapshot.vmmVersion !== here.version || notes.version !== here.version) {
    const saved = snapshot.vmmVersion !== here.version ? snapshot.vmmVersion : notes.version;
    throw new SnapshotIncompatibleError(`the snapshot was saved by QEMU ${saved}, but this host runs QEMU ${here.version}; QEMU restores microvm snapshots only on the version that saved them`);
  }
  if (notes.accel !== here.accel) throw new SnapshotIncompatibleError(`the snapshot was saved under ${notes.accel.toUpperCase()}, but QEMU would run it under ${here.accel.toUpperCase()} here`);
  if (notes.memoryMib !== here.memoryMib) throw new SnapshotIncompatibleError(`the snapshot has ${notes.memoryMib} MiB of memory, but the VM asks for ${here.memoryMib} MiB`);
}
