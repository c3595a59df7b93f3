/** Remote callers name host files only under the allowed directories, whatever `..` or symlinks say. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ErrorCodes, HypercoreError } from '../../core/errors.js';
import type { ImageService } from '../../images/image-service.js';
import type { ImageImporter } from '../../images/import/index.js';
import { ImageOperations } from '../image-operations.js';
import { admitHostPath, anyHostPath, hostPathsWithin } from './host-paths.js';

const dir = mkdtempSync(join(tmpdir(), 'hc-hostpaths-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const vms = join(dir, 'vms');
const secret = join(dir, 'secret');
mkdirSync(vms);
mkdirSync(secret);
writeFileSync(join(vms, 'disk.ext4'), '');
writeFileSync(join(secret, 'key'), '');
symlinkSync(join(secret, 'key'), join(vms, 'key-link'));
symlinkSync(secret, join(vms, 'dir-link'));
symlinkSync(vms, join(dir, 'vms-alias'));
symlinkSync(join(vms, 'disk.ext4'), join(vms, 'inner-link'));
const policy = hostPathsWithin([join(dir, 'vms-alias')], '--allow-host-path');

test('files under an allowed directory are admitted, as their resolved path', () => {
  assert.deepEqual(admitHostPath(policy, join(vms, 'disk.ext4'), 'file'), { path: join(vms, 'disk.ext4') });
  assert.deepEqual(admitHostPath(policy, join(dir, 'vms-alias', 'disk.ext4'), 'file'), { path: join(vms, 'disk.ext4') });
  assert.deepEqual(admitHostPath(policy, join(vms, 'inner-link'), 'file'), { path: join(vms, 'disk.ext4') });
  assert.deepEqual(admitHostPath(policy, join(vms, 'missing.ext4'), 'file'), { path: join(vms, 'missing.ext4') }, 'missing: reported by the file checks');
  assert.deepEqual(admitHostPath(policy, join(vms, 'qemu'), 'program'), { path: join(vms, 'qemu') });
});

test('paths outside, by name, by .., or through a symlink, are refused', () => {
  const denied = (path: string, kind: 'file' | 'program' = 'file') => {
    const a = admitHostPath(policy, path, kind);
    return 'denied' in a ? a.denied : `admitted as ${a.path}`;
  };
  assert.match(denied('/etc/shadow'), /is outside the directories remote callers may use \(allowed: /);
  assert.match(denied(join(vms, '..', 'secret', 'key')), /is outside/);
  assert.match(denied(`${vms}-other/disk`), /is outside/, 'a sibling whose name starts alike');
  assert.match(denied(join(vms, 'key-link')), /through a symbolic link/);
  assert.match(denied(join(vms, 'dir-link', 'key')), /through a symbolic link/);
  assert.match(denied(join(vms, 'dir-link', 'no-such-file')), /through a symbolic link/, 'no probing of missing files behind a link');
  assert.match(denied('disk.ext4'), /must be an absolute path/);
  assert.match(denied('qemu-system-x86_64', 'program'), /must name the program by its absolute path/);
});

test('with no allowed directory everything is refused; on the unix socket everything is admitted', () => {
  const none = hostPathsWithin([], '--allow-host-path');
  const a = admitHostPath(none, join(vms, 'disk.ext4'), 'file');
  assert.ok('denied' in a && /no directories are allowed \(hypercored --allow-host-path\)/.test(a.denied));
  assert.deepEqual(admitHostPath(anyHostPath, '/etc/shadow', 'file'), { path: '/etc/shadow' });
});

test('an allowed directory that does not exist is a settings error naming it', () => {
  assert.throws(() => hostPathsWithin([join(dir, 'nope')], '--allow-host-path'), /--allow-host-path = ".*nope": no such directory/);
});

test('a remote import names an archive only under an allowed directory; the importer never sees another', async () => {
  const opened: string[] = [];
  const importer = { importTar: async (path: string) => { opened.push(path); throw new Error('stop here'); } } as unknown as ImageImporter;
  const remote = new ImageOperations({} as ImageService, importer).withHostPaths(policy);
  await assert.rejects(remote.importImage({ path: join(secret, 'key') }, () => {}), (err: unknown) => err instanceof HypercoreError && err.code === ErrorCodes.permissionDenied && /path = ".*secret\/key": is outside/.test(err.message));
  await assert.rejects(remote.importImage({ path: join(vms, 'key-link') }, () => {}), /through a symbolic link/);
  assert.deepEqual(opened, []);
  await assert.rejects(remote.importImage({ path: join(vms, 'disk.ext4') }, () => {}), /stop here/);
  assert.deepEqual(opened, [join(vms, 'disk.ext4')]);
});
