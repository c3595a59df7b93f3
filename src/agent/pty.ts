/**
 * Loads node-pty at run time. The module has a native addon (build/Release/pty.node), so it can
 * not be bundled: the system image ships it as /agent/node_modules/node-pty next to the bundle.
 * The name is a variable so that no bundler tries to follow it (a plain esbuild run over the agent
 * would otherwise fail on the .node file), and it is loaded only when a terminal is first needed.
 */
import { closeSync, constants, openSync } from 'node:fs';
import { Socket } from 'node:net';
import type * as NodePty from 'node-pty';

/** node-pty's native functions the agent uses for a terminal that no process of the agent's side leads. */
export interface PtyNative {
  /** openpty(3): the master and slave descriptors (non-blocking, inherited by children) and the slave's path. */
  open(cols: number, rows: number): { master: number; slave: number; pty: string };
  /** TIOCSWINSZ on the master. */
  resize(fd: number, cols: number, rows: number): void;
}

/** The parts of node-pty the agent uses. */
export type PtyModule = Pick<typeof NodePty, 'spawn'> & { native: PtyNative };
export type Pty = NodePty.IPty;

const PTY_MODULE = 'node-pty';
let loading: Promise<PtyModule> | undefined;

/** node-pty, loaded once; rejects with an explanation when it is missing or does not load. */
export function loadPty(): Promise<PtyModule> {
  loading ??= (async () => {
    try {
      // node-pty is CommonJS: under ESM its exports are the default export, under CJS the module.
      const mod = (await import(PTY_MODULE)) as unknown as Partial<PtyModule> & { default?: Partial<PtyModule> };
      const api = mod.default ?? mod;
      if (typeof api.spawn !== 'function') throw new Error('it has no spawn function');
      // `native` is node-pty's addon (exported, though not documented): its open() gives a pty pair
      // with no process on it, which a container's process then takes as its controlling terminal.
      if (typeof api.native?.open !== 'function' || typeof api.native.resize !== 'function') throw new Error('it has no native open and resize');
      return { spawn: api.spawn, native: api.native };
    } catch (err) {
      loading = undefined;
      throw new Error(`terminals are unavailable: cannot load ${PTY_MODULE}: ${err instanceof Error ? err.message : String(err)}`);
    }
  })();
  return loading;
}

/** A pty pair the agent holds: the master as a stream, the slave as a descriptor to hand to a child. */
export interface DetachedPty {
  /** Reads the terminal's output, writes its input; 'error' EIO once no process holds the slave any more. */
  master: Socket;
  /** The slave's path in the guest's devpts (a container binds that devpts, so the path is the same inside). */
  path: string;
  /** The slave, opened close-on-exec and without becoming anyone's controlling terminal. */
  slave: number;
  resize(rows: number, cols: number): void;
  /** Closes the agent's slave (once the child has its own). */
  closeSlave(): void;
}

/**
 * Opens a pty pair that is nobody's controlling terminal yet: the process started on it makes it
 * its own (exec-helper.c), inside the container's pid namespace, where its shell can see the
 * session and do job control. node-pty's spawn cannot do that: its child leads the session, in the
 * guest's namespace.
 */
export async function openDetachedPty(rows: number, cols: number): Promise<DetachedPty> {
  const { native } = await loadPty();
  const pair = native.open(cols, rows);
  let slave: number;
  try {
    // openpty's slave is inherited by every child the agent starts from now on; a close-on-exec copy
    // is not, so this pty's end is not held open by an unrelated process.
    slave = openSync(pair.pty, constants.O_RDWR | constants.O_NOCTTY);
  } catch (err) {
    closeSync(pair.master);
    throw err;
  } finally {
    closeSync(pair.slave);
  }
  let slaveOpen = true;
  return {
    master: masterSocket(pair.master),
    path: pair.pty,
    slave,
    resize: (r, c) => native.resize(pair.master, c, r),
    closeSlave: () => {
      if (slaveOpen) closeSync(slave);
      slaveOpen = false;
    },
  };
}

/**
 * A stream over a pty master. It must be a pipe handle: as a TTY handle (what node would guess)
 * libuv would treat it as a terminal of its own (as node-pty also avoids).
 */
function masterSocket(fd: number): Socket {
  const { Pipe, constants: pipeConstants } = (process as unknown as { binding(name: 'pipe_wrap'): PipeWrap }).binding('pipe_wrap');
  const handle = new Pipe(pipeConstants.SOCKET);
  handle.open(fd);
  return new Socket({ handle } as unknown as ConstructorParameters<typeof Socket>[0]);
}

interface PipeWrap {
  Pipe: new (type: number) => { open(fd: number): void };
  constants: { SOCKET: number };
}
