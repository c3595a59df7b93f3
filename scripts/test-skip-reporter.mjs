// A node:test reporter that writes one JSON line per skipped or todo test, so scripts/run-tests.mjs
// can count them: a suite that silently skips must not look like a passing one.
export default async function* skipReporter(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { skip, todo, name, file } = event.data;
    if (skip === undefined && todo === undefined) continue;
    const reason = typeof skip === 'string' ? skip : typeof todo === 'string' ? todo : '';
    yield `${JSON.stringify({ name, file, kind: skip !== undefined ? 'skip' : 'todo', reason })}\n`;
  }
}
