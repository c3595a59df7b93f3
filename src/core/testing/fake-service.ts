/** A VmService over a fake provider, real VM directories under `dir` and `store`, for tests above the core. */
import { VmDirectories } from '../../store/vm-directories.js';
import type { VmStore } from '../ports.js';
import { VmService, type VmServiceDeps } from '../vm-service.js';
import { fakeBoot, type FakeProvider } from './fake-provider.js';

export const silentLogger = { info() {}, warn() {}, error() {}, debug() {}, child() { return silentLogger; } };

/** Ids are `0001` + `idFill` x 12, `0002` + …, so each test file can tell its VMs apart. */
export function fakeVmService(dir: string, store: VmStore, provider: FakeProvider, idFill: string, extra: Partial<VmServiceDeps> = {}): VmService {
  let ids = 0;
  return new VmService({
    store,
    providers: { get: (n) => (n === provider.name ? provider : undefined), all: () => [provider] },
    files: new VmDirectories(`${dir}/root`, `${dir}/run`),
    clock: { now: () => new Date() },
    ids: { newVmId: () => `${String(++ids).padStart(4, '0')}${idFill.repeat(12)}` },
    logger: silentLogger,
    boot: fakeBoot,
    ...extra,
  });
}
