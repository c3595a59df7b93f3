/**
 * Image preparation benchmark: what does it cost to get from a registry image to a VM disk?
 *
 *   node dist/bench/image-prep.js [--size-mb 100] [--runs 3]
 *
 *  a. Builds a test image in code (~size-mb uncompressed, several layers: a busybox base, thousands
 *     of small text files, a few large incompressible files) and pushes it to a real local
 *     docker-registry on 127.0.0.1 (no auth).
 *  b. Cold pull + unpack + ext4: per run, an isolated hypercored (TestDaemon, fresh root) and
 *     `hypercore image pull REF` timed end to end, split by the daemon's 'block image built' log line
 *     (unpackMs, mkfsMs; the rest is resolve + download + verify + CLI/API overhead). Baseline in
 *     the same runs (order alternates): `skopeo copy` to an OCI layout, `umoci unpack`, and
 *     `mkfs.ext4 -d` of the bundle rootfs at the same size as Hypercore's image; fresh dirs per run.
 *  c. Per-VM disk preparation on a cached block image, 20 times each on 256 MiB, 1 GiB and 4 GiB
 *     ext4 bases: `createVmImageDisks` for a drive VM (one qcow2 overlay, written directly) and for a
 *     workload VM (a qcow2 overlay of the cached empty scratch template; its one-time build is
 *     timed apart), against the same overlay made by `qemu-img create` (what Hypercore ran before)
 *     and a full `cp --sparse=always` copy of the base. Target: ≤ 5 ms and flat in the size.
 * Prints numbers only, no assertions. Registry, daemons and temp dirs are removed in `finally` (and
 * on SIGINT/SIGTERM); a watchdog bounds the run to 5 minutes.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { measureTree } from '../src/images/block-image.js';
import { RegistryClient } from '../src/images/registry/client.js';
import { parseReference } from '../src/images/registry/reference.js';
import { startRegistry, type RegistryProcess } from '../src/images/registry/testing/registry-process.js';
import { buildImage, buildLayer, type BuiltImage, type BuiltLayer, type LayerEntry } from '../src/images/testing/oci-builder.js';
import { createVmImageDisks, scratchTemplate } from '../src/images/vm-disks.js';
import { DEFAULT_DISK_SIZE_MIB } from '../src/core/vm.js';
import { repoRoot, TestDaemon } from '../test/e2e/harness.js';
import { intInRange, parseFlags } from './lib/args.js';
import { columns, fmtMiB, fmtMs } from './lib/format.js';
import { guardCleanup } from './lib/lifecycle.js';
import { runProcess } from './lib/processes.js';
import { median, percentile } from './lib/stats.js';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const TOTAL_BUDGET_MS = 290_000;
const WATCHDOG_MS = 298_000;
const COMMAND_TIMEOUT_MS = 120_000;
const DISK_PREP_ITERATIONS = 20;
const COPY_ITERATIONS = 3;
const REPO = 'bench/prep';
const TAG = 'v1';

// ---------------------------------------------------------------------------------------------
// arguments, statistics, formatting

interface Options {
  sizeMb: number;
  runs: number;
}

function parseArgs(argv: readonly string[]): Options {
  let sizeMb: string | number | undefined = 100;
  let runs: string | number | undefined = 3;
  const setRuns = (value: () => string | undefined) => (runs = value());
  parseFlags(argv, {
    usage: 'usage: node dist/bench/image-prep.js [--size-mb N] [--runs N]   (defaults: --size-mb 100 --runs 3)',
    usageOnUnknown: true,
    flags: { '--size-mb': (value) => (sizeMb = value()), '--runs': setRuns, '-n': setRuns },
  });
  return { sizeMb: intInRange('--size-mb', sizeMb, 10, 1024), runs: intInRange('--runs', runs, 1, 20) };
}

const since = (t0: number): number => performance.now() - t0;

function minMedian(label: string, values: readonly number[]): string {
  return `  ${label.padEnd(30)} ${columns([['min', Math.min(...values)], ['median', median(values)]], fmtMs, 10, '   ')}   (n=${values.length})`;
}

/** `label  p50 X  p99 Y  max Z` of createVmImageDisks samples. */
function prepLine(label: string, samples: readonly number[]): string {
  return `    ${label.padEnd(42)} ${columns([['p50', percentile(samples, 0.5)], ['p99', percentile(samples, 0.99)], ['max', Math.max(...samples)]], fmtMs, 9)}`;
}

// ---------------------------------------------------------------------------------------------
// processes

/** Runs a command (no shell) and resolves with its wall time in ms; rejects with stderr on failure. */
async function timed(file: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ ms: number; stdout: string; stderr: string }> {
  const r = await runProcess(file, args, { ...(options.env ? { env: options.env } : {}), timeoutMs: options.timeoutMs ?? COMMAND_TIMEOUT_MS });
  if (r.error) throw r.error;
  if (r.code !== 0) throw new Error(`${[file, ...args].join(' ')} failed (${r.signal ?? `exit ${r.code}`}) after ${Math.round(r.ms)} ms:\n${r.stderr.slice(-4000)}`);
  return { ms: r.ms, stdout: r.stdout, stderr: r.stderr };
}

// ---------------------------------------------------------------------------------------------
// a. the test image

/** Deterministic text, compressible like source code or docs (gzip ~3-4x). */
function makeText(rng: () => number, bytes: number): Buffer {
  const words = ['the', 'image', 'layer', 'config', 'return', 'const', 'function', 'error', 'value', 'if', 'else', 'for', 'while', 'buffer', 'string', 'number', 'export', 'import', 'default', 'module', 'package', 'version', 'license', 'struct', 'int', 'void', 'static', 'include', 'define', 'switch', 'case', 'break'];
  const parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    const indent = ' '.repeat(Math.floor(rng() * 4) * 2);
    const n = 3 + Math.floor(rng() * 9);
    const line = `${indent}${Array.from({ length: n }, () => (rng() < 0.1 ? Math.floor(rng() * 1e6).toString(16) : words[Math.floor(rng() * words.length)]!)).join(' ')};\n`;
    parts.push(line);
    size += line.length;
  }
  return Buffer.from(parts.join('').slice(0, bytes));
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface TestImage {
  image: BuiltImage;
  files: number;
  rawBytes: number;
  layers: { name: string; entries: number; rawBytes: number; gzBytes: number }[];
  buildMs: number;
}

async function buildTestImage(sizeMb: number): Promise<TestImage> {
  const t0 = performance.now();
  const rng = mulberry32(0x5eed);
  const total = sizeMb * MIB;
  const described: TestImage['layers'] = [];
  const layers: BuiltLayer[] = [];
  let files = 0;
  let rawBytes = 0;
  const add = async (name: string, entries: LayerEntry[]): Promise<void> => {
    const layer = await buildLayer(entries);
    const raw = entries.reduce((sum, e) => sum + (e.type === 'file' ? Buffer.byteLength(e.content) : 0), 0);
    files += entries.filter((e) => e.type === 'file').length;
    rawBytes += raw;
    described.push({ name, entries: entries.length, rawBytes: raw, gzBytes: layer.size });
    layers.push(layer);
  };

  // 1. base: busybox, applet links, a few config files.
  const busybox = readFileSync('/bin/busybox');
  const base: LayerEntry[] = ['bin', 'sbin', 'etc', 'lib', 'tmp', 'usr', 'usr/bin', 'usr/lib', 'usr/share', 'var', 'var/log', 'root'].map((path) => ({ type: 'dir', path }));
  base.push({ type: 'file', path: 'bin/busybox', content: busybox, mode: 0o755 });
  for (const applet of ['sh', 'ls', 'cat', 'cp', 'mv', 'rm', 'mkdir', 'mount', 'umount', 'ps', 'grep', 'sed', 'awk', 'vi', 'tar', 'gzip', 'wget', 'ip', 'ping', 'sleep']) {
    base.push({ type: 'symlink', path: `bin/${applet}`, target: 'busybox' });
  }
  base.push({ type: 'file', path: 'etc/os-release', content: 'NAME="Hypercore bench image"\nID=hcbench\n' });
  base.push({ type: 'file', path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\n' });
  base.push({ type: 'file', path: 'etc/group', content: 'root:x:0:\n' });
  await add('base (busybox)', base);

  // 2. thousands of small text files (a quarter of the size), 512 B .. 8 KiB, in 100 directories.
  const smallBudget = Math.floor(total * 0.25);
  const small: LayerEntry[] = [];
  let smallBytes = 0;
  for (let d = 0; d < 100; d++) small.push({ type: 'dir', path: `usr/share/pkg${String(d).padStart(3, '0')}` });
  for (let i = 0; smallBytes < smallBudget; i++) {
    const size = 512 + Math.floor(rng() * 7680);
    const path = `usr/share/pkg${String(i % 100).padStart(3, '0')}/file${String(i).padStart(5, '0')}.txt`;
    small.push({ type: 'file', path, content: makeText(rng, size) });
    if (i % 500 === 0) small.push({ type: 'symlink', path: `${path}.link`, target: `file${String(i).padStart(5, '0')}.txt` });
    smallBytes += size;
  }
  await add('small files', small);

  // 3 and 4. a few large incompressible files (random bytes), the rest of the size, in two layers.
  const largeBudget = total - smallBudget - busybox.length;
  const largeFile = Math.floor(largeBudget / 4);
  for (const [n, name] of [[0, 'large files A'], [1, 'large files B']] as const) {
    const entries: LayerEntry[] = [{ type: 'dir', path: 'var/lib' }, { type: 'dir', path: 'var/lib/data' }];
    for (let k = 0; k < 2; k++) entries.push({ type: 'file', path: `var/lib/data/blob-${n * 2 + k}.bin`, content: randomBytes(largeFile) });
    if (n === 1) {
      // the top layer also changes a file and deletes one from below, as real images do.
      entries.push({ type: 'file', path: 'etc/os-release', content: 'NAME="Hypercore bench image"\nID=hcbench\nVERSION_ID=2\n' });
      entries.push({ type: 'whiteout', path: 'usr/share/pkg000/file00000.txt' });
    }
    await add(name, entries);
  }
  return { image: buildImage(layers), files, rawBytes, layers: described, buildMs: since(t0) };
}

async function pushImage(client: RegistryClient, registry: RegistryProcess, image: BuiltImage): Promise<number> {
  const t0 = performance.now();
  const ref = parseReference(`${registry.host}/${REPO}:${TAG}`);
  for (const b of [...image.layers, image.config]) await client.pushBlob(ref, b.digest, b.bytes);
  await client.pushManifest(ref, image.manifest.mediaType, image.manifest.bytes);
  return since(t0);
}

// ---------------------------------------------------------------------------------------------
// b. cold pull + unpack + ext4

interface HypercoreRun {
  totalMs: number;
  unpackMs: number | undefined;
  mkfsMs: number | undefined;
  imageBytes: number;
}

interface BaselineRun {
  skopeoMs: number;
  umociMs: number;
  mkfsMs: number;
  totalMs: number;
}

/** The 'block image built' line of the daemon's pino log. */
function blockImageBuilt(log: string): { unpackMs?: number; mkfsMs?: number } | undefined {
  for (const line of log.split('\n')) {
    if (!line.includes('block image built')) continue;
    try {
      const parsed = JSON.parse(line) as { msg?: unknown; unpackMs?: unknown; mkfsMs?: unknown };
      if (parsed.msg !== 'block image built') continue;
      return {
        ...(typeof parsed.unpackMs === 'number' ? { unpackMs: parsed.unpackMs } : {}),
        ...(typeof parsed.mkfsMs === 'number' ? { mkfsMs: parsed.mkfsMs } : {}),
      };
    } catch {
      // not JSON: ignore
    }
  }
  return undefined;
}

async function hypercoreRun(ref: string, digest: string, daemons: Set<TestDaemon>): Promise<HypercoreRun> {
  const daemon = new TestDaemon('hc-bench-prep-d-');
  daemons.add(daemon);
  try {
    await daemon.start();
    const pull = await timed(process.execPath, [join(repoRoot, 'bin', 'hypercore'), 'image', 'pull', ref], { env: daemon.env });
    const built = blockImageBuilt(daemon.log());
    const block = join(daemon.root, 'images', 'blocks', `${digest.slice(7)}.ext4`);
    if (!existsSync(block)) throw new Error(`no block image at ${block} after the pull:\n${pull.stderr}\n${daemon.log()}`);
    return { totalMs: pull.ms, unpackMs: built?.unpackMs, mkfsMs: built?.mkfsMs, imageBytes: statSync(block).size };
  } finally {
    await daemon.cleanup();
    daemons.delete(daemon);
  }
}

async function baselineRun(registry: RegistryProcess, dir: string, imageBytes: number): Promise<BaselineRun> {
  mkdirSync(dir, { recursive: true });
  const layout = join(dir, 'oci');
  const bundle = join(dir, 'bundle');
  const out = join(dir, 'out.ext4');
  const skopeo = await timed('skopeo', ['--insecure-policy', 'copy', '-q', '--src-tls-verify=false', `docker://${registry.host}/${REPO}:${TAG}`, `oci:${layout}:${TAG}`]);
  const umoci = await timed('umoci', ['unpack', '--image', `${layout}:${TAG}`, bundle]);
  const mkfs = await timed('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', join(bundle, 'rootfs'), out, `${Math.ceil(imageBytes / 1024)}k`]);
  return { skopeoMs: skopeo.ms, umociMs: umoci.ms, mkfsMs: mkfs.ms, totalMs: skopeo.ms + umoci.ms + mkfs.ms };
}

// ---------------------------------------------------------------------------------------------
// c. per-VM disks on a cached block image

interface DiskPrepResult {
  label: string;
  samples: number[];
}

/** Fraction of a base image its content fills: Hypercore sizes block images to content + 15% + 16 MiB. */
const BASE_FILL = 0.8;
const FILLER = 'var/lib/bench-filler.bin';

/**
 * An ext4 base of `bytes`, filled to about BASE_FILL like a real block image: the unpacked test
 * image plus a filler file of non-zero bytes (so a sparse copy cannot skip it).
 */
async function makeBase(path: string, bytes: number, tree: string | undefined): Promise<string> {
  let content = 'empty filesystem';
  if (tree) {
    const filler = join(tree, FILLER);
    rmSync(filler, { force: true });
    const treeBytes = (await measureTree(tree)).blockBytes;
    const fillerBytes = Math.max(0, Math.floor((bytes * BASE_FILL - treeBytes) / MIB) * MIB);
    if (treeBytes < bytes * BASE_FILL) {
      writeFiller(filler, fillerBytes);
      content = `test image tree + ${fmtMiB(fillerBytes)} filler`;
    } else tree = undefined;
  }
  const args = ['-q', '-F', '-t', 'ext4', '-b', '4096', '-E', 'nodiscard', ...(tree ? ['-d', tree] : []), path, `${bytes / 1024}k`];
  await timed('mkfs.ext4', args, { timeoutMs: 120_000 });
  // A cached image is on disk already: flush it so its writeback does not land in the timings.
  await timed('sync', [path], { timeoutMs: 120_000 });
  return content;
}

function writeFiller(path: string, bytes: number): void {
  mkdirSync(join(path, '..'), { recursive: true });
  const chunk = randomBytes(4 * MIB);
  const fd = openSync(path, 'w');
  try {
    for (let written = 0; written < bytes; written += chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - written));
  } finally {
    closeSync(fd);
  }
}

async function timeDiskPrep(base: string, work: string, formats: readonly ('raw' | 'qcow2')[], iterations: number, workload = false): Promise<number[]> {
  const samples: number[] = [];
  for (let i = -1; i < iterations; i++) {
    const stateDir = join(work, `vm-${formats.join('-')}-${workload ? 'w' : 'd'}-${i + 1}`);
    mkdirSync(stateDir);
    const t0 = performance.now();
    // A drive VM: a qcow2 overlay when the VMM reads qcow2, else the image plus a scratch disk. A
    // workload VM: the image plus a scratch disk (with qcow2, an overlay of the cached template).
    await createVmImageDisks(base, stateDir, { formats, sizeMib: DEFAULT_DISK_SIZE_MIB, workload }, { scratchTemplates: join(work, 'scratch-templates') });
    const ms = since(t0);
    if (i >= 0) samples.push(ms); // the first call is a warm-up (and builds the template)
    rmSync(stateDir, { recursive: true, force: true });
  }
  return samples;
}

/** The same drive-VM overlay as `qemu-img create` makes it: the baseline of the direct writer. */
async function timeQemuImg(base: string, work: string, iterations: number): Promise<number[]> {
  const samples: number[] = [];
  const size = String(Math.max(statSync(base).size, DEFAULT_DISK_SIZE_MIB * MIB));
  for (let i = -1; i < iterations; i++) {
    const overlay = join(work, `qemu-img-${i + 1}.qcow2`);
    const { ms } = await timed('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', '-b', base, '-F', 'raw', overlay, size]);
    if (i >= 0) samples.push(ms);
    rmSync(overlay, { force: true });
  }
  return samples;
}

/** `cp --sparse=always` alone (into the page cache), and cp followed by `sync FILE` (durable). */
async function timeCopy(base: string, work: string, iterations: number): Promise<{ cp: number[]; durable: number[] }> {
  const cp: number[] = [];
  const durable: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const copy = join(work, `copy-${i}.ext4`);
    const c = (await timed('cp', ['--sparse=always', base, copy], { timeoutMs: 120_000 })).ms;
    const s = (await timed('sync', [copy], { timeoutMs: 120_000 })).ms;
    cp.push(c);
    durable.push(c + s);
    rmSync(copy, { force: true });
  }
  return { cp, durable };
}

function allocated(path: string): number {
  return statSync(path).blocks * 512;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const work = mkdtempSync(join(tmpdir(), 'hc-bench-prep-'));
  const daemons = new Set<TestDaemon>();
  let registry: RegistryProcess | undefined;
  let client: RegistryClient | undefined;
  const guard = guardCleanup(
    async () => {
      for (const d of daemons) await d.cleanup().catch(() => undefined);
      await client?.close().catch(() => undefined);
      await registry?.stop().catch(() => undefined);
      rmSync(work, { recursive: true, force: true });
    },
    { announceSignal: false, watchdog: { ms: WATCHDOG_MS, message: `\nwatchdog: the benchmark exceeded ${WATCHDOG_MS / 1000} s; cleaning up and exiting` } },
  );
  const overBudget = (): boolean => since(started) > TOTAL_BUDGET_MS;

  try {
    console.log('Hypercore image preparation benchmark');
    console.log(`host: ${cpus().length} CPU(s) (${cpus()[0]?.model ?? 'unknown'}), Linux ${release()}, node ${process.version}`);
    console.log(`options: --size-mb ${options.sizeMb} --runs ${options.runs}; work dir ${work}`);

    // a. build and push
    console.log('\n== a. test image ==');
    const test = await buildTestImage(options.sizeMb);
    for (const l of test.layers) console.log(`  layer ${l.name.padEnd(16)} ${String(l.entries).padStart(6)} entries  ${fmtMiB(l.rawBytes).padStart(10)} content  ${fmtMiB(l.gzBytes).padStart(10)} gzipped`);
    const gz = test.layers.reduce((s, l) => s + l.gzBytes, 0);
    console.log(`  total: ${test.files} files, ${fmtMiB(test.rawBytes)} content, ${fmtMiB(gz)} gzipped (${((gz / test.rawBytes) * 100).toFixed(0)}%); built in ${fmtMs(test.buildMs)}`);
    registry = await startRegistry();
    client = new RegistryClient({});
    const pushMs = await pushImage(client, registry, test.image);
    const ref = `${registry.host}/${REPO}:${TAG}`;
    console.log(`  pushed ${ref}@${test.image.manifest.digest} to docker-registry in ${fmtMs(pushMs)}`);

    // b. cold pull + unpack + ext4
    console.log('\n== b. cold pull + unpack + ext4 (fresh daemon root / fresh dirs per run) ==');
    console.log('  hypercore: `hypercore image pull` end to end; split from the daemon log (rest = resolve + download + verify + CLI/API)');
    console.log('  baseline:  skopeo copy -> oci layout, umoci unpack, mkfs.ext4 -q -F -b 4096 -d rootfs (same size as hypercore\'s image)');
    const hc: HypercoreRun[] = [];
    const base: BaselineRun[] = [];
    let treeForBases: string | undefined;
    for (let run = 0; run < options.runs; run++) {
      if (run > 0 && overBudget()) {
        console.log(`  (stopping after ${run} run(s): time budget reached)`);
        break;
      }
      const dir = join(work, `baseline-${run}`);
      const doHypercore = async (): Promise<void> => {
        hc.push(await hypercoreRun(ref, test.image.manifest.digest, daemons));
      };
      // The baseline needs hypercore's image size; the very first run therefore starts with hypercore.
      const doBaseline = async (): Promise<void> => {
        base.push(await baselineRun(registry!, dir, hc.at(-1)!.imageBytes));
      };
      if (run % 2 === 0) {
        await doHypercore();
        await doBaseline();
      } else {
        await doBaseline();
        await doHypercore();
      }
      const h = hc.at(-1)!;
      const b = base.at(-1)!;
      const split = h.unpackMs !== undefined && h.mkfsMs !== undefined ? `(pull+other ${fmtMs(h.totalMs - h.unpackMs - h.mkfsMs)}, unpack ${fmtMs(h.unpackMs)}, mkfs ${fmtMs(h.mkfsMs)})` : '(no split: log line not found)';
      console.log(`  run ${run + 1}: hypercore ${fmtMs(h.totalMs).padStart(9)} ${split}`);
      console.log(`         baseline  ${fmtMs(b.totalMs).padStart(9)} (skopeo ${fmtMs(b.skopeoMs)}, umoci ${fmtMs(b.umociMs)}, mkfs ${fmtMs(b.mkfsMs)})`);
      // Keep the last unpacked tree to fill the block images of part c; drop the rest now.
      if (treeForBases) rmSync(join(treeForBases, '..', '..'), { recursive: true, force: true });
      rmSync(join(dir, 'oci'), { recursive: true, force: true });
      rmSync(join(dir, 'out.ext4'), { force: true });
      treeForBases = join(dir, 'bundle', 'rootfs');
    }
    console.log(`  hypercore block image: ${fmtMiB(hc[0]!.imageBytes)}`);
    console.log(minMedian('hypercore total', hc.map((h) => h.totalMs)));
    const withSplit = hc.filter((h) => h.unpackMs !== undefined && h.mkfsMs !== undefined);
    if (withSplit.length > 0) {
      console.log(minMedian('  pull+other', withSplit.map((h) => h.totalMs - h.unpackMs! - h.mkfsMs!)));
      console.log(minMedian('  unpack', withSplit.map((h) => h.unpackMs!)));
      console.log(minMedian('  mkfs', withSplit.map((h) => h.mkfsMs!)));
    }
    console.log(minMedian('baseline total', base.map((b) => b.totalMs)));
    console.log(minMedian('  skopeo copy', base.map((b) => b.skopeoMs)));
    console.log(minMedian('  umoci unpack', base.map((b) => b.umociMs)));
    console.log(minMedian('  mkfs.ext4 -d', base.map((b) => b.mkfsMs)));
    const ratio = median(hc.map((h) => h.totalMs)) / median(base.map((b) => b.totalMs));
    console.log(`  ratio hypercore/baseline (median): ${ratio.toFixed(2)}`);

    // c. per-VM disks
    console.log(`\n== c. per-VM disk preparation on a cached block image (${DISK_PREP_ITERATIONS} runs each, after 1 warm-up) ==`);
    const tree = treeForBases && existsSync(treeForBases) ? treeForBases : undefined;
    const results: DiskPrepResult[] = [];
    const qemuImgResults: number[][] = [];
    const workloadResults: number[][] = [];
    // The one-time cost a workload VM of a new disk_size pays: formatting the empty template.
    const templateT0 = performance.now();
    await scratchTemplate(join(work, 'scratch-templates'), DEFAULT_DISK_SIZE_MIB * MIB);
    console.log(`  scratch template of ${DEFAULT_DISK_SIZE_MIB} MiB (made once per disk_size, then shared): ${fmtMs(since(templateT0))}`);
    const copies: { label: string; cp: number[]; durable: number[] }[] = [];
    for (const [label, bytes] of [['256 MiB', 256 * MIB], ['1 GiB', GIB], ['4 GiB', 4 * GIB]] as const) {
      if (overBudget()) {
        console.log(`  (skipping ${label} and larger: time budget reached)`);
        break;
      }
      const path = join(work, `base-${bytes}.ext4`);
      const content = await makeBase(path, bytes, tree);
      console.log(`  base ${label} (${content}; ${fmtMiB(allocated(path))} allocated)`);
      const samples = await timeDiskPrep(path, work, ['raw', 'qcow2'], DISK_PREP_ITERATIONS);
      results.push({ label, samples });
      console.log(prepLine('drive VM: qcow2 overlay (written directly):', samples));
      const qemuImg = await timeQemuImg(path, work, DISK_PREP_ITERATIONS);
      qemuImgResults.push(qemuImg);
      console.log(prepLine('  baseline: the same overlay by qemu-img:', qemuImg));
      const workload = await timeDiskPrep(path, work, ['raw', 'qcow2'], DISK_PREP_ITERATIONS, true);
      workloadResults.push(workload);
      console.log(prepLine('workload VM: scratch overlay of the template:', workload));
      if (bytes === GIB) {
        const raw = await timeDiskPrep(path, work, ['raw'], DISK_PREP_ITERATIONS, true);
        console.log(prepLine('workload VM without qcow2 (mkfs of a sparse file):', raw));
      }
      const copy = await timeCopy(path, work, COPY_ITERATIONS);
      copies.push({ label, ...copy });
      console.log(`    ${'full copy, cp --sparse=always:'.padEnd(42)} ${copy.cp.map(fmtMs).join(', ')}  (median ${fmtMs(median(copy.cp))})`);
      console.log(`    ${'full copy, cp + sync FILE (durable):'.padEnd(42)} ${copy.durable.map(fmtMs).join(', ')}  (median ${fmtMs(median(copy.durable))})`);
      rmSync(path, { force: true });
    }
    if (tree) rmSync(join(tree, FILLER), { force: true });
    const oneGib = results.find((r) => r.label === '1 GiB');
    const oneGibCopy = copies.find((c) => c.label === '1 GiB');
    if (oneGib && oneGibCopy) {
      const p50 = percentile(oneGib.samples, 0.5);
      console.log(`  1 GiB: overlay p50 ${fmtMs(p50)} vs full copy median ${fmtMs(median(oneGibCopy.cp))} (${(median(oneGibCopy.cp) / p50).toFixed(0)}x), durable copy ${fmtMs(median(oneGibCopy.durable))} (${(median(oneGibCopy.durable) / p50).toFixed(0)}x)`);
    }
    if (results.length > 1) {
      const p50s = results.map((r) => percentile(r.samples, 0.5));
      const workloadP50s = workloadResults.map((r) => percentile(r, 0.5));
      const qemuImgP50s = qemuImgResults.map((r) => percentile(r, 0.5));
      console.log(`  overlay p50 by base size: ${results.map((r, i) => `${r.label} ${fmtMs(p50s[i]!)}`).join(', ')} (max/min ${(Math.max(...p50s) / Math.min(...p50s)).toFixed(2)})`);
      console.log(`  workload scratch p50 by base size: ${results.map((r, i) => `${r.label} ${fmtMs(workloadP50s[i]!)}`).join(', ')}`);
      console.log(`  qemu-img baseline p50 by base size: ${results.map((r, i) => `${r.label} ${fmtMs(qemuImgP50s[i]!)}`).join(', ')}; direct writer ${(median(qemuImgP50s) / median(p50s)).toFixed(0)}x faster`);
      console.log(`  copy median by base size: ${copies.map((c) => `${c.label} ${fmtMs(median(c.cp))}`).join(', ')}`);
      const worst = Math.max(...p50s, ...workloadP50s);
      console.log(`  target per-VM disk ≤ 5 ms p50 at every size: ${worst <= 5 ? 'met' : 'NOT met'} (worst p50 ${fmtMs(worst)})`);
    }
    console.log(`\ntotal benchmark time ${(since(started) / 1000).toFixed(1)} s`);
  } finally {
    await guard.finish();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exitCode = 1;
});
