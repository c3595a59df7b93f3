/**
 * ext4 block images of unpacked image trees, made with `mkfs.ext4 -d` (no loop mount, no root
 * needed beyond file access). Deterministic: a fixed UUID and hash seed derived from the image
 * digest and e2fsprogs' fake time make the same tree produce the same bytes.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../system/command.js';

const BLOCK = 4096;
const INODE_SIZE = 256;
const MIB = 1024 * 1024;

export interface TreeUsage {
  /** Inodes the tree needs: one per file, directory and symlink (a hardlinked file counts once). */
  entries: number;
  /** Bytes the tree needs in 4 KiB blocks (files rounded up, one block per directory and long symlink). */
  blockBytes: number;
}

/**
 * Walks the tree (without following symlinks) to size the filesystem. A file with several
 * hardlinks is stored once, so its data is counted once: counting every name would let a small
 * image (one file, thousands of links) ask for a huge filesystem.
 */
export async function measureTree(dir: string): Promise<TreeUsage> {
  let entries = 0;
  let blockBytes = 0;
  const linked = new Set<string>();
  const stack = [dir];
  while (stack.length > 0) {
    const current = stack.pop()!;
    for (const name of await readdir(current)) {
      const path = join(current, name);
      const st = await lstat(path);
      if (st.isFile() && st.nlink > 1) {
        // Further names of a hardlinked file take a directory entry, but no inode and no data.
        const inode = `${st.dev}:${st.ino}`;
        if (linked.has(inode)) continue;
        linked.add(inode);
      }
      entries++;
      if (st.isDirectory()) {
        blockBytes += BLOCK;
        stack.push(path);
      } else if (st.isFile() || (st.isSymbolicLink() && st.size > 59)) {
        // Symlinks under 60 bytes live in the inode itself.
        blockBytes += Math.ceil(st.size / BLOCK) * BLOCK;
      }
    }
  }
  return { entries, blockBytes };
}

/** Filesystem size: content, inode tables, plus headroom for ext4's own metadata. */
export function imageSizeBytes(usage: TreeUsage, inodes: number): number {
  const raw = usage.blockBytes + inodes * INODE_SIZE;
  const withHeadroom = Math.ceil(raw * 1.15) + 16 * MIB;
  return Math.ceil(withHeadroom / MIB) * MIB;
}

/** A UUID string from the digest's first 32 hex digits, so the filesystem id is stable per image. */
export function uuidFromDigest(digest: string): string {
  const hex = digest.replace(/^sha256:/, '').slice(0, 32).padEnd(32, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

export interface BuildExt4Options {
  sourceDir: string;
  output: string;
  /** Seeds UUID and directory hash seed. */
  digest: string;
  label?: string;
}

export function mkfsArguments(options: BuildExt4Options, usage: TreeUsage): string[] {
  const uuid = uuidFromDigest(options.digest);
  const inodes = usage.entries + 1024;
  const sizeKiB = imageSizeBytes(usage, inodes) / 1024;
  return [
    '-q', '-F',
    '-t', 'ext4',
    '-b', String(BLOCK), '-I', String(INODE_SIZE),
    // Read-only shared image: no journal, no reserved blocks.
    '-O', '^has_journal', '-m', '0',
    '-N', String(inodes),
    '-U', uuid,
    '-E', `hash_seed=${uuid},root_owner=0:0,nodiscard`,
    ...(options.label ? ['-L', options.label.slice(0, 16)] : []),
    '-d', options.sourceDir,
    options.output,
    `${sizeKiB}k`,
  ];
}

/** Builds the image at `output` (the caller renames it into place). */
export async function buildExt4Image(options: BuildExt4Options): Promise<{ sizeBytes: number; durationMs: number }> {
  const usage = await measureTree(options.sourceDir);
  const args = mkfsArguments(options, usage);
  const result = await runCommand('mkfs.ext4', args, { timeoutMs: 10 * 60_000, env: { ...process.env, E2FSPROGS_FAKE_TIME: '1' } });
  return { sizeBytes: Number.parseInt(args.at(-1)!, 10) * 1024, durationMs: result.durationMs };
}
