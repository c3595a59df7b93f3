/**
 * QMP message shapes and errors (docs/interop/qmp-spec.rst; observed on QEMU 7.2, see
 * shared/facts/hypervisors.md §3.1). Parsing is strict about the envelope and lenient about
 * payloads: callers validate the `return` values they rely on.
 */
import { ProviderFailedError } from '../../core/errors.js';

export type JsonObject = { [key: string]: unknown };

/** The first line QEMU sends: `{"QMP": {"version": {...}, "capabilities": [...]}}`. */
export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}

/** An asynchronous event. `data` is `{}` when QEMU sends none; `timestamp` is QEMU's host clock. */
export interface QmpEvent {
  event: string;
  data: JsonObject;
  timestamp: { seconds: number; microseconds: number };
}

export type QmpMessage =
  | { kind: 'greeting'; greeting: QmpGreeting }
  | { kind: 'event'; event: QmpEvent }
  | { kind: 'return'; id: unknown; value: unknown }
  | { kind: 'error'; id: unknown; errorClass: string; desc: string };

/**
 * What went wrong: `refused` means nothing listens on the socket (VMM not up yet, or gone),
 * `closed` that the connection ended before a reply, `protocol` that the peer sent something
 * that is not QMP, `command` that QEMU answered with an error (see {@link QmpCommandError}).
 */
export type QmpFailureKind = 'timeout' | 'refused' | 'protocol' | 'closed' | 'io' | 'command';

/** Any QMP failure. A ProviderFailedError, so the API layer maps it without knowing QMP. */
export class QmpError extends ProviderFailedError {
  readonly kind: QmpFailureKind;
  readonly socketPath: string;
  /** The command that failed, when the failure belongs to one. */
  readonly command: string | undefined;

  constructor(kind: QmpFailureKind, socketPath: string, message: string, options: { command?: string; cause?: unknown } = {}) {
    super(`QMP ${socketPath}: ${options.command ? `${options.command}: ` : ''}${message}`, options.cause);
    this.kind = kind;
    this.socketPath = socketPath;
    this.command = options.command;
  }
}

/** QEMU answered a command with `{"error": {"class", "desc"}}`; the connection stays usable. */
export class QmpCommandError extends QmpError {
  /** QMP error class, e.g. `CommandNotFound`, `GenericError`, `DeviceNotFound`. */
  readonly errorClass: string;
  readonly desc: string;

  constructor(socketPath: string, command: string, errorClass: string, desc: string) {
    super('command', socketPath, `${errorClass}: ${desc}`, { command });
    this.errorClass = errorClass;
    this.desc = desc;
  }
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Thrown by {@link parseQmpLine} for anything that is not a QMP message; the text says why. */
export class QmpParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QmpParseError';
  }
}

function preview(line: string): string {
  return JSON.stringify(line.length > 120 ? `${line.slice(0, 117)}...` : line);
}

function parseGreeting(body: unknown, line: string): QmpGreeting {
  const version = isObject(body) ? body['version'] : undefined;
  const qemu = isObject(version) ? version['qemu'] : undefined;
  if (!isObject(body) || !isObject(version) || !isObject(qemu)) throw new QmpParseError(`malformed QMP greeting ${preview(line)}`);
  const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
  const caps = Array.isArray(body['capabilities']) ? body['capabilities'].filter((c): c is string => typeof c === 'string') : [];
  return {
    version: {
      qemu: { major: num(qemu['major']), minor: num(qemu['minor']), micro: num(qemu['micro']) },
      package: typeof version['package'] === 'string' ? version['package'] : '',
    },
    capabilities: caps,
  };
}

/** Classifies one line from the server; throws QmpParseError for non-JSON or unknown shapes. */
export function parseQmpLine(line: string): QmpMessage {
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch {
    throw new QmpParseError(`not JSON: ${preview(line)}`);
  }
  if (!isObject(doc)) throw new QmpParseError(`not a JSON object: ${preview(line)}`);
  if ('QMP' in doc) return { kind: 'greeting', greeting: parseGreeting(doc['QMP'], line) };
  if ('return' in doc) return { kind: 'return', id: doc['id'], value: doc['return'] };
  if ('error' in doc) {
    const err = doc['error'];
    if (!isObject(err)) throw new QmpParseError(`malformed error reply ${preview(line)}`);
    const errorClass = typeof err['class'] === 'string' ? err['class'] : 'GenericError';
    const desc = typeof err['desc'] === 'string' ? err['desc'] : JSON.stringify(err);
    return { kind: 'error', id: doc['id'], errorClass, desc };
  }
  if (typeof doc['event'] === 'string') {
    const ts = doc['timestamp'];
    const seconds = isObject(ts) && typeof ts['seconds'] === 'number' ? ts['seconds'] : 0;
    const microseconds = isObject(ts) && typeof ts['microseconds'] === 'number' ? ts['microseconds'] : 0;
    const data = isObject(doc['data']) ? doc['data'] : {};
    return { kind: 'event', event: { event: doc['event'], data, timestamp: { seconds, microseconds } } };
  }
  throw new QmpParseError(`unknown QMP message ${preview(line)}`);
}
