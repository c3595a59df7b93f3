/** The `hc.*` kernel arguments the guest boots with: the network's, and who serves the metadata address. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BootInput } from '../core/ports.js';
import { GuestBootContract } from './boot-contract.js';

const network = { tap: 'hc0', mac: '02:00:00:00:00:01', ip: '10.88.0.2', prefixLength: 24, gateway: '10.88.0.1', dns: ['10.88.0.1'] };

function args(extra: Partial<BootInput>): string[] {
  const input = { spec: { kernel: '/nonexistent/vmlinuz', kernelArgs: 'quiet' }, kernelFormats: ['bzimage'], ...extra } as BootInput;
  return new GuestBootContract('/nonexistent').plan(input).args;
}

test('a NAT guest whose host serves 169.254.169.254 is told so; others serve it themselves', () => {
  assert.deepEqual(args({ network: { ...network, metadataOnHost: true } }), ['hc.ip=10.88.0.2/24', 'hc.gw=10.88.0.1', 'hc.dns=10.88.0.1', 'hc.metadata=host', 'quiet']);
  assert.deepEqual(args({ network }), ['hc.ip=10.88.0.2/24', 'hc.gw=10.88.0.1', 'hc.dns=10.88.0.1', 'quiet']);
  assert.deepEqual(args({}), ['quiet']);
});
