/**
 * The web console: a page of plain DOM code, bundled by esbuild. It calls the daemon's own HTTP API
 * with the session cookie (set by /console/login), follows /v1/events to keep the VM list live,
 * and relays xterm.js terminals: exec over its WebSocket, the serial console as its followed log plus
 * typing over the serial WebSocket.
 */
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import './console.css';

interface Vm {
  id: string;
  name: string;
  state: string;
  provider: string;
}
interface VmEvent {
  type: 'created' | 'state-changed' | 'deleted';
  vmId: string;
  name: string;
  state: string;
}
interface Image {
  reference: string;
  digest: string;
  size?: number;
}
interface ApiErrorBody {
  error?: { code: string; message: string; details?: { location?: string; path?: string; message: string }[] };
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiErrorBody,
  ) {
    super(body.error ? `${body.error.message} [${body.error.code}]` : `HTTP ${status}`);
  }
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, { method, credentials: 'same-origin', ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}) });
  if (res.status === 401) showLogin();
  const text = await res.text();
  const parsed: unknown = text ? JSON.parse(text) : {};
  if (!res.ok) throw new ApiError(res.status, parsed as ApiErrorBody);
  return parsed as T;
}

/** Calls `onLine` with each line of an NDJSON or text response as it arrives; resolves when it ends. */
async function followLines(res: Response, onLine: (line: string) => void): Promise<void> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let pending = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += value;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      onLine(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  }
  if (pending) onLine(pending);
}

// ---- login ----

function showLogin(): void {
  $('app').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
}

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const token = ($('token') as HTMLInputElement).value;
  api<{ id: string; scope: string }>('POST', '/console/login', { token }).then(
    () => {
      ($('token') as HTMLInputElement).value = '';
      start();
    },
    (err: Error) => ($('login-error').textContent = err.message),
  );
});

$('logout').addEventListener('click', () => {
  void api('POST', '/console/logout').finally(() => location.reload());
});

// ---- VMs, live through the event stream ----

const vms = new Map<string, Vm>();
const actions: Record<string, (vm: Vm) => Promise<unknown>> = {
  Start: (vm) => api('POST', `/v1/vms/${vm.id}/start`),
  Stop: (vm) => api('POST', `/v1/vms/${vm.id}/stop`, {}),
  Pause: (vm) => api('POST', `/v1/vms/${vm.id}/pause`),
  Resume: (vm) => api('POST', `/v1/vms/${vm.id}/resume`),
  Remove: (vm) => (confirm(`Remove VM ${vm.name}?`) ? api('DELETE', `/v1/vms/${vm.id}?force=true`) : Promise.resolve()),
};
/** Which actions make sense in which state (the daemon still decides). */
const actionsIn: Record<string, string[]> = {
  running: ['Stop', 'Pause', 'Remove'],
  paused: ['Resume', 'Stop', 'Remove'],
  created: ['Start', 'Remove'],
  stopped: ['Start', 'Remove'],
  failed: ['Start', 'Remove'],
};

function renderVms(): void {
  const body = $('vms').querySelector('tbody')!;
  body.replaceChildren(
    ...[...vms.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((vm) => {
        const row = document.createElement('tr');
        row.dataset['vm'] = vm.name;
        const cell = (text: string, cls = '') => {
          const td = document.createElement('td');
          td.textContent = text;
          td.className = cls;
          return td;
        };
        const buttons = document.createElement('td');
        for (const name of ['Console', ...(actionsIn[vm.state] ?? [])]) {
          const b = document.createElement('button');
          b.textContent = name;
          b.dataset['action'] = name;
          b.addEventListener('click', () => (name === 'Console' ? openPanel(vm) : actions[name]!(vm).catch((err: Error) => ($('vm-error').textContent = `${name} ${vm.name}: ${err.message}`))));
          buttons.append(b);
        }
        row.append(cell(vm.name), cell(vm.id.slice(0, 12)), cell(vm.state, `state state-${vm.state}`), cell(vm.provider), buttons);
        return row;
      }),
  );
}

async function followEvents(): Promise<void> {
  for (;;) {
    try {
      const res = await fetch('/v1/events', { credentials: 'same-origin' });
      if (res.status === 401) return showLogin();
      $('events-state').textContent = 'live';
      // Subscribed first, then listed: no change falls between the two.
      const listed = api<{ vms: Vm[] }>('GET', '/v1/vms').then((r) => {
        for (const vm of r.vms) vms.set(vm.id, vm);
        renderVms();
      });
      await followLines(res, (line) => {
        if (!line) return;
        const event = JSON.parse(line) as VmEvent & ApiErrorBody;
        if (event.error) return;
        if (event.type === 'deleted') vms.delete(event.vmId);
        else if (vms.has(event.vmId)) vms.get(event.vmId)!.state = event.state;
        else void api<Vm>('GET', `/v1/vms/${event.vmId}`).then((vm) => vms.set(vm.id, vm)).then(renderVms, () => undefined);
        renderVms();
      });
      await listed;
    } catch {
      // The daemon restarted or the network dropped: try again shortly.
    }
    $('events-state').textContent = 'reconnecting…';
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// ---- a VM's serial console and exec terminal ----

let panel: { vm: Vm; close: () => void } | undefined;

function newTerminal(into: HTMLElement, options: { convertEol: boolean }): { term: Terminal; fit: FitAddon } {
  into.replaceChildren();
  const term = new Terminal({ convertEol: options.convertEol, fontSize: 13, scrollback: 2000 });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(into);
  fit.fit();
  return { term, fit };
}

function openPanel(vm: Vm): void {
  panel?.close();
  $('vm-panel').hidden = false;
  $('vm-panel-name').textContent = vm.name;
  $('terminal').replaceChildren();
  $('terminal-state').textContent = '';
  $('serial-state').textContent = '';
  const serial = newTerminal($('serial'), { convertEol: true });
  const abort = new AbortController();
  fetch(`/v1/vms/${vm.id}/logs?follow=true`, { credentials: 'same-origin', signal: abort.signal })
    .then(async (res) => {
      if (!res.ok) throw new ApiError(res.status, (await res.json()) as ApiErrorBody);
      const reader = res.body!.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        serial.term.write(value);
      }
    })
    .catch((err: Error) => abort.signal.aborted || serial.term.write(`\r\n[${err.message}]\r\n`));
  let closeTyping = (): void => {};
  $('serial-type').onclick = () => {
    closeTyping();
    closeTyping = typeIntoSerial(vm, serial.term);
  };
  let closeTerminal = (): void => {};
  $('terminal-open').onclick = () => {
    closeTerminal();
    closeTerminal = openTerminal(vm);
  };
  panel = {
    vm,
    close: () => {
      abort.abort();
      closeTyping();
      closeTerminal();
      serial.term.dispose();
    },
  };
}

/**
 * Sends what is typed into the serial terminal to the guest's ttyS0 over the serial WebSocket. What
 * the guest prints comes in through the followed console log (which has every byte, and the history
 * before this session), so the socket's own output is not shown twice.
 */
function typeIntoSerial(vm: Vm, term: Terminal): () => void {
  const state = $('serial-state');
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/vms/${vm.id}/serial`);
  ws.onopen = () => {
    state.textContent = 'typing';
    term.focus();
  };
  ws.onmessage = (m: MessageEvent<unknown>) => {
    if (typeof m.data !== 'string') return;
    const out = JSON.parse(m.data) as ApiErrorBody;
    if (out.error) state.textContent = `${out.error.message} [${out.error.code}]`;
  };
  ws.onclose = () => {
    if (state.textContent === 'typing') state.textContent = 'closed';
  };
  const input = term.onData((data) => ws.readyState === WebSocket.OPEN && ws.send(data));
  return () => {
    input.dispose();
    ws.close();
  };
}

const toBase64 = (bytes: Uint8Array): string => btoa(String.fromCharCode(...bytes));
const fromBase64 = (text: string): Uint8Array => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/** `sh` in the guest over the exec WebSocket, sized to the terminal and resized with it. */
function openTerminal(vm: Vm): () => void {
  const { term, fit } = newTerminal($('terminal'), { convertEol: false });
  const state = $('terminal-state');
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/vms/${vm.id}/exec`);
  const encoder = new TextEncoder();
  ws.onopen = () => {
    ws.send(JSON.stringify({ start: { args: ['sh'], tty: true, rows: term.rows, cols: term.cols } }));
    state.textContent = 'connected';
    term.focus();
  };
  ws.onmessage = (m: MessageEvent<string>) => {
    const out = JSON.parse(m.data) as { data?: string; exited?: boolean; exitCode?: number } & ApiErrorBody;
    if (out.data) term.write(fromBase64(out.data));
    if (out.exited) state.textContent = `exited with ${out.exitCode ?? 0}`;
    if (out.error) state.textContent = `${out.error.message} [${out.error.code}]`;
  };
  ws.onclose = () => {
    if (state.textContent === 'connected') state.textContent = 'closed';
  };
  const input = term.onData((data) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ stdin: toBase64(encoder.encode(data)) })));
  // The size the guest's TTY was last told, for people and tests reading the page.
  const showSize = (): void => void ($('terminal').dataset['size'] = `${term.rows} ${term.cols}`);
  showSize();
  const resize = term.onResize(({ rows, cols }) => {
    showSize();
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ rows, cols }));
  });
  const onWindowResize = () => fit.fit();
  window.addEventListener('resize', onWindowResize);
  return () => {
    window.removeEventListener('resize', onWindowResize);
    input.dispose();
    resize.dispose();
    ws.close();
    term.dispose();
  };
}

$('vm-panel-close').addEventListener('click', () => {
  panel?.close();
  panel = undefined;
  $('vm-panel').hidden = true;
});

// ---- spawn from hac.toml text ----

$('spawn').addEventListener('click', () => {
  const errors = $('spawn-errors');
  errors.textContent = '';
  api<Vm>('POST', '/v1/vms/hac', { hac: ($('hac') as HTMLTextAreaElement).value }).then(
    (vm) => {
      vms.set(vm.id, vm);
      renderVms();
    },
    (err: ApiError) => {
      const details = err.body?.error?.details ?? [];
      errors.textContent = details.length > 0 ? details.map((d) => `${d.location ?? d.path ?? ''}: ${d.message}`).join('\n') : err.message;
    },
  );
});

// ---- images, with pull progress ----

async function listImages(): Promise<void> {
  const { images } = await api<{ images: Image[] }>('GET', '/v1/images');
  $('images')
    .querySelector('tbody')!
    .replaceChildren(
      ...images.map((img) => {
        const row = document.createElement('tr');
        for (const text of [img.reference, img.digest.slice(0, 19), img.size === undefined ? '' : `${(img.size / 1048576).toFixed(1)} MiB`]) {
          const td = document.createElement('td');
          td.textContent = text;
          row.append(td);
        }
        return row;
      }),
    );
}

$('pull-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const progress = $('pull-progress');
  const reference = ($('pull-ref') as HTMLInputElement).value.trim();
  progress.textContent = `pulling ${reference}…`;
  void fetch('/v1/images/pull', { method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ reference }) })
    .then(async (res) => {
      if (!res.ok) throw new ApiError(res.status, (await res.json()) as ApiErrorBody);
      await followLines(res, (line) => {
        if (!line) return;
        const p = JSON.parse(line) as { phase?: string; current?: number; total?: number; layer?: string } & ApiErrorBody;
        if (p.error) throw new ApiError(200, p);
        progress.textContent = `${p.phase}${p.layer ? ` ${p.layer.slice(7, 19)}` : ''}${p.total ? ` ${Math.round((100 * (p.current ?? 0)) / p.total)}%` : ''}`;
      });
      await listImages();
    })
    .catch((err: Error) => (progress.textContent = err.message));
});

// ---- start ----

function start(): void {
  api<{ vms: Vm[] }>('GET', '/v1/vms').then(
    () => {
      $('login').hidden = true;
      $('app').hidden = false;
      $('logout').hidden = false;
      void followEvents();
      listImages().catch(() => undefined);
    },
    () => showLogin(),
  );
}

start();
