/**
 * The contract-test VMM: an HTTP server on a unix socket that answers a VMM's REST API the way the
 * real VMM would, for tests on hosts that cannot run the VMM. Every request is first held to the
 * official OpenAPI document (path, method, body schema), then to the VMM's own ordering rules
 * (a `VmmRules` per VMM: pre-boot-only calls, one start, files that must exist...). Anything that
 * breaks either is answered with the VMM's error status and recorded as a violation, so a test
 * asserts that a provider's whole call sequence passed.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Server as NetServer } from 'node:net';
import { OpenApiContract, type ContractOperation } from './openapi-contract.js';

/** One request as the fake VMM saw it. */
export interface RecordedCall {
  method: string;
  path: string;
  body?: unknown;
  status: number;
  /** Why the call was refused, when it broke the contract or a rule. */
  violation?: string;
}

export interface RuleReply {
  status: number;
  body?: unknown;
}

/** A rule was broken: the request is answered with `status` (400 unless said) and recorded as a violation. */
export class RuleViolation extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

/** The VMM-specific part: state, ordering rules and answers. Throws RuleViolation for a call the VMM would refuse. */
export interface VmmRules {
  handle(operation: ContractOperation, body: unknown): RuleReply | Promise<RuleReply>;
  /** The VMM's error body for `message` (Firecracker: `{fault_message}`, Cloud Hypervisor: a list of strings). */
  errorBody(message: string): unknown;
}

export interface FakeVmmOptions {
  /** Largest request body accepted (Firecracker's default limit is 51200 bytes). */
  maxBodyBytes?: number;
  /** Called after every request, e.g. to append it to a log the test reads. */
  onCall?: (call: RecordedCall) => void;
  /**
   * Called before the contract check; may answer the request itself (fault injection) or return
   * undefined to let it through.
   */
  intercept?: (method: string, path: string) => RuleReply | undefined | Promise<RuleReply | undefined>;
}

export class FakeVmmServer {
  readonly calls: RecordedCall[] = [];
  private readonly server: Server;

  constructor(
    private readonly contract: OpenApiContract,
    private readonly rules: VmmRules,
    private readonly options: FakeVmmOptions = {},
  ) {
    this.server = createServer((req, res) => void this.serve(req, res));
  }

  /** Calls that broke the contract or a rule. */
  get violations(): string[] {
    return this.calls.filter((c) => c.violation).map((c) => `${c.method} ${c.path}: ${c.violation}`);
  }

  listen(socketPath: string): Promise<void> {
    return listenOn(this.server, socketPath);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const record = (status: number, payload: unknown, extra: { body?: unknown; violation?: string }): void => {
      const call: RecordedCall = { method, path, status, ...extra };
      this.calls.push(call);
      this.options.onCall?.(call);
      if (payload === undefined) res.writeHead(status).end();
      else res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(payload));
    };
    const text = await readBody(req, this.options.maxBodyBytes ?? 51200);
    if (text === undefined) return record(400, this.rules.errorBody('request body too large'), { violation: 'request body too large' });
    let body: unknown;
    if (text.length > 0) {
      try {
        body = JSON.parse(text) as unknown;
      } catch {
        return record(400, this.rules.errorBody('body is not JSON'), { violation: `body is not JSON: ${text.slice(0, 80)}` });
      }
      if (req.headers['content-type']?.split(';')[0]?.trim() !== 'application/json') {
        return record(400, this.rules.errorBody('Content-Type must be application/json'), { body, violation: 'a JSON body without Content-Type: application/json' });
      }
    }
    const injected = await this.options.intercept?.(method, path);
    if (injected) return record(injected.status, injected.body, { ...(body === undefined ? {} : { body }) });
    const checked = this.contract.check(method, path, body);
    if (!checked.ok) return record(checked.status, this.rules.errorBody(checked.problem), { ...(body === undefined ? {} : { body }), violation: checked.problem });
    try {
      const reply = await this.rules.handle(checked.operation, body);
      record(reply.status, reply.body, body === undefined ? {} : { body });
    } catch (err) {
      const violation = err instanceof RuleViolation ? err : new RuleViolation(`the fake VMM failed: ${String(err)}`, 500);
      record(violation.status, this.rules.errorBody(violation.message), { ...(body === undefined ? {} : { body }), violation: violation.message });
    }
  }
}

/** Starts a test server on a unix socket. */
export function listenOn(server: NetServer, socketPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The request body as text, or undefined when it passes `limit` bytes. */
function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.on('end', () => resolve(size > limit ? undefined : Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(undefined));
  });
}
