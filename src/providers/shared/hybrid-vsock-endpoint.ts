/**
 * The VMM side of hybrid vsock, for test VMMs: listens on the vsock device's unix socket, reads
 * `CONNECT <port>\n` (at most 32 bytes, as Firecracker does), and when a guest listener for that
 * port exists answers `OK <host port>\n` and joins the two streams; otherwise it closes the
 * connection, as both VMMs do while nothing in the guest listens. "Guest listeners" are unix
 * sockets the test names per port (e.g. a dev-mode agent), looked up on every connection, so a
 * listener that appears late (a booting guest) is found by the host's retry.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { listenOn } from './fake-vmm.js';

const MAX_CONNECT_LINE = 32;
/** Firecracker hands out host-side ports from 2^30 upwards. */
const FIRST_HOST_PORT = 1 << 30;

export class HybridVsockEndpoint {
  private readonly server: Server;
  private nextHostPort = FIRST_HOST_PORT;
  /** CONNECT requests seen, in order (ports as the host sent them). */
  readonly connects: string[] = [];

  constructor(private readonly guestListener: (port: number) => string | undefined) {
    this.server = createServer((socket) => this.accept(socket));
  }

  listen(path: string): Promise<void> {
    return listenOn(this.server, path);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(host: Socket): void {
    host.on('error', () => undefined);
    let line = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      line = Buffer.concat([line, chunk]);
      const nl = line.indexOf(0x0a);
      if (nl < 0) {
        if (line.length > MAX_CONNECT_LINE) host.destroy();
        return;
      }
      host.off('data', onData);
      host.pause();
      const request = line.subarray(0, nl).toString('latin1');
      const rest = line.subarray(nl + 1);
      this.connects.push(request);
      const m = /^connect (\d{1,10})$/i.exec(request.trim());
      const target = m ? this.guestListener(Number(m[1])) : undefined;
      if (!target) return void host.destroy();
      const guest = connect(target);
      guest.once('error', () => host.destroy());
      guest.once('connect', () => {
        host.write(`OK ${this.nextHostPort++}\n`);
        if (rest.length > 0) guest.write(rest);
        host.pipe(guest);
        guest.pipe(host);
        host.resume();
        host.once('close', () => guest.destroy());
        guest.once('close', () => host.destroy());
      });
    };
    host.on('data', onData);
  }
}
