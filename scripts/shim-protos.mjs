// Generates the containerd protocol definitions the shim speaks, at build time, from the .proto
// files Debian ships (never copied into this repository by hand):
//   golang-github-containerd-containerd-dev  task service v2, task events, the TTRPC events service,
//                                            mounts, runtime options, runc's ProcessDetails
//   golang-github-containerd-cgroups-dev     cgroup v2 metrics (the Stats answer)
//   golang-github-gogo-protobuf-dev          gogo.proto and the google/protobuf well-known types
// protobufjs parses them (with their imports) into one JSON descriptor, dist/src/shim/protocol/
// containerd.json, which the shim loads with protobuf.Root.fromJSON. The descriptor records the
// package versions it was made from.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const gocode = process.env.HYPERCORE_GOCODE_DIR ?? '/usr/share/gocode/src';
const outfile = join(root, 'dist/src/shim/protocol/containerd.json');

/** Import roots, searched in order (as protoc's -I). */
const includes = [gocode, join(gocode, 'github.com/gogo/protobuf/protobuf'), join(gocode, 'github.com/gogo/protobuf')];

/** The files the shim needs, and the Debian package of each. */
const files = [
  ['github.com/containerd/containerd/runtime/v2/task/shim.proto', 'golang-github-containerd-containerd-dev'],
  ['github.com/containerd/containerd/api/events/task.proto', 'golang-github-containerd-containerd-dev'],
  ['github.com/containerd/containerd/api/services/ttrpc/events/v1/events.proto', 'golang-github-containerd-containerd-dev'],
  ['github.com/containerd/containerd/pkg/runtimeoptions/v1/api.proto', 'golang-github-containerd-containerd-dev'],
  ['github.com/containerd/cgroups/v2/stats/metrics.proto', 'golang-github-containerd-cgroups-dev'],
  ['github.com/containerd/containerd/runtime/v2/runc/options/oci.proto', 'golang-github-containerd-containerd-dev'],
];

const missing = files.filter(([file]) => !existsSync(join(gocode, file)));
if (missing.length > 0) {
  const packages = [...new Set(missing.map(([, pkg]) => pkg)), 'golang-github-gogo-protobuf-dev'];
  console.error(`shim-protos: missing ${missing.map(([f]) => join(gocode, f)).join(', ')}; install ${packages.join(' ')} (scripts/setup.sh does)`);
  process.exit(1);
}

const proto = new protobuf.Root();
proto.resolvePath = (_origin, target) => {
  if (target.startsWith('/')) return target;
  for (const dir of includes) {
    const candidate = join(dir, target);
    if (existsSync(candidate)) return candidate;
  }
  return target;
};
proto.loadSync(files.map(([file]) => join(gocode, file)), { keepCase: false, alternateCommentMode: false });
proto.resolveAll();

// protobufjs brings its own copies of the google/protobuf well-known types, with the .proto's
// snake_case field names (Any's type_url); the rest is lowerCamelCase. Field numbers decide the
// wire format, so the names are made lowerCamelCase too, for one convention in the code.
const json = proto.toJSON();
function camelFields(ns) {
  for (const [name, nested] of Object.entries(ns.nested ?? {})) {
    if (nested.fields) nested.fields = Object.fromEntries(Object.entries(nested.fields).map(([f, v]) => [f.replace(/_([a-z])/g, (_, c) => c.toUpperCase()), v]));
    camelFields(nested);
  }
}
camelFields(json.nested.google.nested.protobuf);

function packageVersion(name) {
  try {
    return execFileSync('dpkg-query', ['-W', '-f=${Version}', name], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}
const sources = Object.fromEntries([...new Set([...files.map(([, p]) => p), 'golang-github-gogo-protobuf-dev'])].map((p) => [p, packageVersion(p)]));

mkdirSync(dirname(outfile), { recursive: true });
writeFileSync(outfile, `${JSON.stringify({ sources, root: json })}\n`);
console.log(`shim-protos: ${outfile} from ${Object.entries(sources).map(([p, v]) => `${p} ${v}`).join(', ')}`);
