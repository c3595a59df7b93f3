/**
 * Fixtures for the Firecracker contract tests: a VM directory, a fake ELF kernel, raw disks, and the
 * fake VMM's call log read back.
 */
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LaunchRequest, Logger, VmPaths } from '../../../core/ports.js';
import type { VmSpec } from '../../../core/vm.js';
import type { FakeRecord } from './fake-firecracker.js';

export const quietLogger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined, child: () => quietLogger };

export interface FcFixture {
  dir: string;
  records: string;
  paths: VmPaths;
  kernel: string;
  initrd: string;
  disk: string;
}

export async function fcFixture(): Promise<FcFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'hc-fc-'));
  const records = join(dir, 'records');
  const paths = { stateDir: join(dir, 'state'), runDir: join(dir, 'run'), consoleLog: join(dir, 'state', 'console.log') };
  for (const d of [records, paths.stateDir, paths.runDir]) await mkdir(d, { recursive: true });
  const kernel = join(dir, 'vmlinux');
  await writeFile(kernel, Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]), Buffer.alloc(1024)]));
  const initrd = join(dir, 'initrd.img');
  await writeFile(initrd, Buffer.alloc(1024));
  const disk = join(dir, 'root.raw');
  await writeFile(disk, Buffer.alloc(64 * 1024));
  return { dir, records, paths, kernel, initrd, disk };
}

export function fcSpec(name: string, binary: string, extra: Partial<VmSpec> = {}): VmSpec {
  return { name, description: '', cores: 2, memoryMib: 256, kernelArgs: '', driveReadOnly: false, provider: 'firecracker', hypervisor: { firecracker: { binary } }, ...extra };
}

export function launchRequest(fx: FcFixture, vmId: string, spec: VmSpec, extra: Partial<LaunchRequest> = {}): LaunchRequest {
  return {
    vmId,
    spec,
    paths: fx.paths,
    boot: { kernel: fx.kernel, initrd: fx.initrd, args: ['hc.root=vda', 'hc.rootflags=rw'] },
    rootDisk: { path: fx.disk, readOnly: false },
    disks: [],
    agent: false,
    ...extra,
  };
}

/** Every record the fake VMM of `vmId` wrote (all its launches). */
export async function fakeRecords(fx: FcFixture, vmId: string): Promise<FakeRecord[]> {
  const text = await readFile(join(fx.records, `${vmId}.jsonl`), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as FakeRecord);
}

/** The calls of the fake VMM of `vmId` as `METHOD path`, and the violations among them. */
export async function fakeCalls(fx: FcFixture, vmId: string): Promise<{ calls: string[]; violations: string[]; bodies: Map<string, unknown> }> {
  const calls: string[] = [];
  const violations: string[] = [];
  const bodies = new Map<string, unknown>();
  for (const r of await fakeRecords(fx, vmId)) {
    if (r.event !== 'call') continue;
    calls.push(`${r.method} ${r.path}`);
    bodies.set(`${r.method} ${r.path}`, r.body);
    if (r.violation) violations.push(`${r.method} ${r.path}: ${r.violation}`);
  }
  return { calls, violations, bodies };
}
