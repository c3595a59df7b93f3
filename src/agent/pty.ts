/**
 * Loads node-pty at run time. The module has a native addon (build/Release/pty.node), so it can
 * not be bundled: the system image ships it as /agent/node_modules/node-pty next to the bundle.
 * The name is a variable so that no bundler tries to follow it (a plain esbuild run over the agent
 * would otherwise fail on the .node file), and it is loaded only when a terminal is first needed.
 */
import type * as NodePty from 'node-pty';

/** The parts of node-pty the agent uses. */
export type PtyModule = Pick<typeof NodePty, 'spawn'>;
export type Pty = NodePty.IPty;

const PTY_MODULE = 'node-pty';
let loading: Promise<PtyModule> | undefined;

/** node-pty, loaded once; rejects with an explanation when it is missing or does not load. */
export function loadPty(): Promise<PtyModule> {
  loading ??= (async () => {
    try {
      // node-pty is CommonJS: under ESM its exports are the default export, under CJS the module.
      const mod = (await import(PTY_MODULE)) as unknown as Partial<PtyModule> & { default?: PtyModule };
      const api = mod.default ?? mod;
      if (typeof api.spawn !== 'function') throw new Error('it has no spawn function');
      return { spawn: api.spawn };
    } catch (err) {
      loading = undefined;
      throw new Error(`terminals are unavailable: cannot load ${PTY_MODULE}: ${err instanceof Error ? err.message : String(err)}`);
    }
  })();
  return loading;
}
