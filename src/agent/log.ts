/**
 * The agent's log: one line per event on stdout, which in the guest is the serial console (ttyS0),
 * where the host's VM log and the boot-time benchmarks read it. Every line carries the prefix so it
 * stands out among kernel and init messages.
 */

/** Prefix of every agent log line on the console. */
export const LOG_PREFIX = '[hypercore-agent]';

/** The line printed once the channel is open and waiting for the host (boot measurements look for it). */
export const READY_LINE = `${LOG_PREFIX} ready`;

/** Where the agent's modules write their messages; tests pass a silent or collecting one. */
export type Log = (message: string) => void;

/** Logs to stdout with the agent prefix. */
export const consoleLog: Log = (message) => {
  console.log(`${LOG_PREFIX} ${message}`);
};

/** Discards everything (tests). */
export const silentLog: Log = () => undefined;

/** The message of anything thrown, for log lines. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
