import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AgentSupervisor, mergeEnv, workloadProcess } from './agent-supervisor.js';
import type { Image } from './image.js';
import { FakeAgentConnector, fakeImage, MemoryWorkloadLog } from './testing/fake-agent.js';
import type { Vm, VmSpec } from './vm.js';

const image: Image = { ...fakeImage, config: { entrypoint: ['/entry'], cmd: ['--serve'], env: ['PATH=/bin', 'MODE=image'], workingDir: '/srv', user: '1000' } };

function vm(workload?: VmSpec['workload']): Vm {
  const spec: VmSpec = { name: 'w', description: '', cores: 1, memoryMib: 128, kernelArgs: '', driveReadOnly: false, image: image.reference, provider: 'qemu', hypervisor: { qemu: { accel: 'tcg' }, firecracker: {}, cloudHypervisor: {} }, ...(workload ? { workload } : {}) };
  return { id: 'x', name: 'w', state: 'starting', provider: 'qemu', createdAt: '', updatedAt: '', spec };
}

test('the workload runs the image entrypoint + cmd with its env, workdir and user', () => {
  assert.deepEqual(workloadProcess(vm(), image), { args: ['/entry', '--serve'], env: ['PATH=/bin', 'MODE=image'], cwd: '/srv', user: '1000', terminal: false });
});

test('hac.toml [workload] overrides replace cmd, add env (later keys win), and set a tty', () => {
  const p = workloadProcess(vm({ cmd: ['--once'], env: ['MODE=spec', 'EXTRA=1'], tty: true, workdir: '/tmp' }), image);
  assert.deepEqual(p.args, ['/entry', '--once']);
  assert.deepEqual(p.env, ['PATH=/bin', 'MODE=spec', 'EXTRA=1']);
  assert.equal(p.cwd, '/tmp');
  assert.equal(p.terminal, true);
});

test('a new entrypoint drops the image cmd (as docker run --entrypoint does)', () => {
  assert.deepEqual(workloadProcess(vm({ entrypoint: ['/bin/sh'], tty: false }), image).args, ['/bin/sh']);
});

test('an image without any command and no override is a clear error', () => {
  const bare = { ...image, config: {} };
  assert.throws(() => workloadProcess(vm(), bare), /defines no command; set \[workload\] command/);
});

test('mergeEnv keeps one entry per key, the later one', () => {
  assert.deepEqual(mergeEnv(['A=1', 'B=2'], ['A=3']), ['A=3', 'B=2']);
});

const silent = { info() {}, warn() {}, error() {}, debug() {}, child() { return silent; } };

test('only a restore goes on with the channel openEarly opened: a reattach connects anew and closes the early one', async () => {
  const agents = new FakeAgentConnector();
  const supervisor = new AgentSupervisor(agents, new MemoryWorkloadLog(), silent, () => undefined);
  const endpoint = { kind: 'unix' as const, path: '/nowhere/agent.sock' };
  const target = vm();
  await supervisor.openEarly(target, endpoint);
  await new Promise((r) => setImmediate(r));
  assert.equal(agents.sessions.length, 1, 'the early channel');
  const earlyClosed = agents.sessions[0]!.closed.then(() => true);
  await supervisor.reattach(target, endpoint);
  assert.equal(agents.connects, 2, 'the reattach opened its own channel');
  assert.equal(await Promise.race([earlyClosed, new Promise((r) => setTimeout(() => r(false), 1000))]), true, 'the early channel was closed');
  assert.equal(supervisor.session(target), agents.sessions[1]);

  // A restore takes it: no second connect.
  const restored = vm();
  restored.id = 'y';
  await supervisor.openEarly(restored, endpoint);
  await supervisor.resumeRestored(restored, endpoint, () => ({ unixTimeMs: 0, entropy: new Uint8Array(0), hostname: 'y', machineId: 'm' }));
  assert.equal(agents.connects, 3);
  assert.equal(supervisor.session(restored), agents.sessions[2]);
  supervisor.forgetAll();
});
