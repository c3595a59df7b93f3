/**
 * The web console in a real browser: Debian's chromium, headless, driven by puppeteer-core, against
 * a real hypercored's remote listener and one real QEMU guest. The page is loaded, a token is pasted
 * into the login form, an image is pulled with progress, a VM is spawned from pasted hac.toml text
 * (after a bad one shows its line-numbered errors), its serial console and an exec terminal are
 * opened, keys typed into the serial console come back echoed by the guest, `echo $((6*7))` is typed
 * into the terminal and 42 read back, and the VM is stopped from the page.
 * Screenshots of each step are saved in the directory the test prints.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { startRegistry, type RegistryProcess } from '../../src/images/registry/testing/registry-process.js';
import { pushBusyboxImage } from './busybox-image.js';
import { freePort, repoRoot, TestDaemon } from './harness.js';

const CHROMIUM = '/usr/bin/chromium';
const daemon = new TestDaemon('hc-e2e-console-');
const artifacts = join(repoRoot, 'test-artifacts', 'console');
let registry: RegistryProcess | undefined;
let browser: Browser | undefined;
let page: Page;
let origin = '';
let image = '';
let token = '';

before(async () => {
  registry = await startRegistry();
  image = await pushBusyboxImage(registry, 'NAME="Hypercore console test"\n');
  process.env['HYPERCORE_AGENT_TIMEOUT'] = '90';
  origin = `http://127.0.0.1:${await freePort()}`;
  await daemon.start(['--listen', origin, '--insecure-loopback']);
  const created = daemon.cli(['token', 'create', '--scope', 'write', '--name', 'console-e2e']);
  assert.equal(created.code, 0, created.stderr);
  token = created.stdout.trim();
  mkdirSync(artifacts, { recursive: true });
  console.log(`# screenshots: ${artifacts}`);
  // --no-sandbox only because the test runs as root, where chromium's sandbox cannot start.
  browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--window-size=1200,1400'], defaultViewport: { width: 1200, height: 1400 } });
  page = await browser.newPage();
});

after(async () => {
  await browser?.close();
  await daemon.cleanup();
  await registry?.stop();
});

const shot = (name: string) => page.screenshot({ path: join(artifacts, `${name}.png`) });
const text = (selector: string) => page.$eval(selector, (el) => (el as HTMLElement).innerText);
const stateOf = (vm: string) => page.$eval(`tr[data-vm="${vm}"] .state`, (el) => el.textContent ?? '').catch(() => '');

/** Waits until `check` (run in the page) returns true, or fails naming `what` and what the page showed. */
async function until(what: string, fn: string, timeout = 60_000): Promise<void> {
  try {
    await page.waitForFunction(fn, { timeout, polling: 200 });
  } catch (err) {
    await shot(`failed-${what.replace(/\W+/g, '-')}`);
    // The terminal first: a failure report may be cut after its first lines.
    const terminal = await text('#terminal').catch(() => '(none)');
    const state = await text('#terminal-state').catch(() => '');
    throw new Error(`${what}: ${(err as Error).message}\nterminal (${state}): ${terminal}\npage: ${await text('body')}\n${daemon.log().slice(-3000)}`);
  }
}

test('log in with a token: a bad one is refused on the page, a good one becomes an HttpOnly, Secure, SameSite=Strict cookie', async () => {
  await page.goto(`${origin}/`);
  await until('the login form', `!document.getElementById('login').hidden`);
  await page.type('#token', 'hc_0123456789abcdef.wrong');
  await page.click('#login-form button');
  await until('the refusal', `document.getElementById('login-error').textContent.includes('HC_UNAUTHENTICATED')`);
  await page.$eval('#token', (el) => ((el as HTMLInputElement).value = ''));
  await page.type('#token', token);
  await page.click('#login-form button');
  await until('the app after login', `!document.getElementById('app').hidden`);
  const [cookie] = await browser!.cookies();
  assert.equal(cookie?.name, 'hypercore_session');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.secure, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(await page.evaluate('document.cookie'), '', 'the page script cannot read the session cookie');
});

test('pull an image with progress, spawn from hac text (bad text shows line-numbered errors), the VM appears live', async () => {
  await page.type('#pull-ref', image);
  await page.click('#pull-form button');
  await until('the pulled image in the list', `document.querySelector('#images tbody').innerText.includes(${JSON.stringify(image)})`);
  assert.match(await text('#pull-progress'), /done/);

  await page.type('#hac', '[spacecore]\nname = "web"\n[hardware]\nmemory = "lots"\ncores = 99\n');
  await page.click('#spawn');
  await until('the validation errors', `document.getElementById('spawn-errors').textContent.includes('hac.toml:4')`);
  const errors = await text('#spawn-errors');
  assert.match(errors, /hac\.toml:4:\d+/);
  assert.match(errors, /hac\.toml:5:\d+/);
  assert.equal(await page.$('tr[data-vm="web"]'), null, 'nothing was created');
  await shot('1-spawn-errors');

  await page.$eval('#hac', (el) => ((el as HTMLTextAreaElement).value = ''));
  await page.type('#hac', `[spacecore]\nname = "web"\n[hardware]\nmemory = 256\nref = "${image}"\n[workload]\ncommand = ["sleep", "100000"]\n[network]\nmode = "none"\n`);
  await page.click('#spawn');
  await until('the VM row', `!!document.querySelector('tr[data-vm="web"]')`);
  await until('the VM running (from the event stream)', `document.querySelector('tr[data-vm="web"] .state')?.textContent === 'running'`, 60_000);
  await shot('2-vm-running');
});

test('the serial console and an exec terminal: echo $((6*7)) reads back 42', async () => {
  await page.click('tr[data-vm="web"] button[data-action="Console"]');
  await until('the serial console output', `document.querySelector('#serial .xterm-rows')?.innerText.trim().length > 0`);
  // Keys typed into the serial console reach the guest's ttyS0: its line discipline echoes them
  // (init holds the console open), and the echo comes back through the console log.
  // The agent's last boot line (its exec helper started, or not) ends its console output: keys echoed
  // before it could be split by it.
  await until('the last boot line (exec helper ready, or exec uses crun exec)', `/exec helper ready|exec uses crun exec/.test(document.querySelector('#serial .xterm-rows').innerText)`, 30_000);
  await page.click('#serial-type');
  await until('the serial console taking keys', `document.getElementById('serial-state').textContent === 'typing'`);
  await page.focus('#serial .xterm-helper-textarea');
  await page.keyboard.type('typed-into-ttyS0');
  // The agent and the kernel log to the same console: a line of theirs can land inside the echo.
  await until('the guest echoing the keys', `document.querySelector('#serial .xterm-rows').innerText.replace(/\\[[^\\]\\n]*\\][^\\n]*\\n?/g, '').includes('typed-into-ttyS0')`, 15_000);
  await page.click('#terminal-open');
  await until('the exec terminal connected', `document.getElementById('terminal-state').textContent === 'connected'`);
  await page.waitForSelector('#terminal .xterm-helper-textarea');
  // As a person would, type at the prompt: busybox's line editor asks the terminal where its cursor
  // is after drawing the prompt, and a line typed ahead of that answer gets the answer echoed into it.
  await until('the shell prompt', `[...document.querySelectorAll('#terminal .xterm-rows > div')].some((row) => row.textContent.trim() === '/ #')`, 30_000);
  await page.focus('#terminal .xterm-helper-textarea');
  await page.keyboard.type('echo $((6*7))\n');
  await until('42 in the terminal', `[...document.querySelectorAll('#terminal .xterm-rows > div')].some((row) => row.textContent.trim() === '42')`, 30_000);
  await shot('3-terminal');
  // A narrower window narrows the terminal; the new size goes to the guest's TTY over the WebSocket.
  const wide = await page.$eval('#terminal', (el) => (el as HTMLElement).dataset['size'] ?? '');
  await page.setViewport({ width: 600, height: 1400 });
  await until('the terminal narrowed', `document.getElementById('terminal').dataset.size !== ${JSON.stringify(wide)}`);
  const narrow = await page.$eval('#terminal', (el) => (el as HTMLElement).dataset['size'] ?? '');
  assert.ok(Number(narrow.split(' ')[1]) < Number(wide.split(' ')[1]), `${wide} → ${narrow}`);
  await page.focus('#terminal .xterm-helper-textarea');
  await page.keyboard.type('stty size\n');
  await until(`stty size saying ${narrow}`, `[...document.querySelectorAll('#terminal .xterm-rows > div')].some((row) => row.textContent.trim() === ${JSON.stringify(narrow)})`, 30_000);
  await page.setViewport({ width: 1200, height: 1400 });
});

test('stop the VM from the page: its state changes live', async () => {
  await page.click('tr[data-vm="web"] button[data-action="Stop"]');
  await until('the VM stopped', `document.querySelector('tr[data-vm="web"] .state')?.textContent === 'stopped'`, 60_000);
  assert.equal(await stateOf('web'), 'stopped');
  const ls = daemon.cli(['ls', '--json']);
  assert.equal((JSON.parse(ls.stdout) as { name: string; state: string }[]).find((v) => v.name === 'web')?.state, 'stopped');
  await shot('4-stopped');
});
