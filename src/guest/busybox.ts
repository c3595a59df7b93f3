/**
 * The host's busybox as the userland of guest images. It must be statically linked: the guest
 * images carry no libc, and a dynamic busybox fails there only as "No working init found".
 */
import { access, readFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { ProviderUnavailableError } from '../core/errors.js';
import { runCommand } from '../system/command.js';

/** Where Debian's busybox-static (and busybox) put the binary. */
export const BUSYBOX_CANDIDATES: readonly string[] = ['/usr/bin/busybox', '/bin/busybox'];

/** True when the ELF image has no PT_INTERP program header, i.e. needs no dynamic loader. */
export function isStaticElf(elf: Buffer): boolean {
  const ELF_MAGIC = 0x7f454c46;
  if (elf.length < 64 || elf.readUInt32BE(0) !== ELF_MAGIC) return false;
  if (elf[4] !== 2 || elf[5] !== 1) return false; // only 64-bit little-endian (x86_64 guests)
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  const PT_INTERP = 3;
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > elf.length) return false;
    if (elf.readUInt32LE(at) === PT_INTERP) return false;
  }
  return true;
}

/** Finds a static busybox (or checks `path`), returning its path and contents. */
export async function loadStaticBusybox(path?: string): Promise<{ path: string; data: Buffer }> {
  const hint = 'install busybox-static (apt-get install busybox-static)';
  const candidates = path ? [path] : BUSYBOX_CANDIDATES;
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
    } catch {
      continue;
    }
    const data = await readFile(candidate);
    if (!isStaticElf(data)) throw new ProviderUnavailableError(`${candidate} is not a statically linked x86_64 busybox; ${hint}`);
    return { path: candidate, data };
  }
  throw new ProviderUnavailableError(`no busybox found at ${candidates.join(' or ')}; ${hint}`);
}

/** The applet names this busybox provides (`busybox --list`). */
export async function listApplets(busyboxPath: string): Promise<string[]> {
  const { stdout } = await runCommand(busyboxPath, ['--list'], { timeoutMs: 10_000 });
  return stdout.split('\n').map((s) => s.trim()).filter((s) => /^[\w.[\]-]+$/.test(s));
}
