/**
 * @hypercore/sdk quick start: makes sure a VM runs an image (pulling it with progress and creating
 * the VM only if needed), runs a command in it with its output streamed, and follows VM events.
 *
 *   npm run build
 *   node dist/examples/sdk-quickstart.js IMAGE [VM-NAME]
 *
 * It talks to the daemon on HYPERCORE_SOCKET (default /run/hypercore/hypercore.sock). In a project
 * of your own, import from '@hypercore/sdk' instead of the relative path.
 */
import { HypercoreClient, VmNotFoundError, type Vm } from '../sdk/src/index.js';

const [image, name = 'sdk-example'] = process.argv.slice(2);
if (!image) {
  process.stderr.write('usage: node dist/examples/sdk-quickstart.js IMAGE [VM-NAME]\n');
  process.exit(2);
}

const hc = new HypercoreClient({ socketPath: process.env['HYPERCORE_SOCKET'] ?? '/run/hypercore/hypercore.sock' });

/** The VM called `name`, created from `image` when there is none (each API error code is its own class). */
async function ensureVm(): Promise<Vm> {
  try {
    return await hc.getVm(name);
  } catch (err) {
    if (!(err instanceof VmNotFoundError)) throw err;
  }
  await hc.pullImage(image!, { onProgress: (p) => process.stdout.write(`pull ${p.phase}${p.total ? ` ${p.current ?? 0}/${p.total}` : ''}\n`) });
  return hc.createVm({ name, memoryMib: 256, image: image!, workload: { cmd: ['sleep', '1000000'] } });
}

const abort = new AbortController();
const watching = (async () => {
  for await (const event of hc.watchEvents({ signal: abort.signal })) process.stdout.write(`event ${event.type} ${event.name} ${event.state}\n`);
})().catch((err: unknown) => {
  if (!abort.signal.aborted) throw err;
});

try {
  const vm = await ensureVm();
  process.stdout.write(`vm ${vm.name} ${vm.id} ${vm.state}\n`);
  const proc = await hc.exec(vm.id, { args: ['sh', '-c', 'echo $((6*7))'] });
  proc.stdout.pipe(process.stdout, { end: false });
  proc.stderr.pipe(process.stderr, { end: false });
  proc.stdin.end();
  const { exitCode } = await proc.exited;
  process.stdout.write(`exit ${exitCode}\n`);
  process.exitCode = exitCode;
} finally {
  abort.abort();
  await watching;
  await hc.close();
}
