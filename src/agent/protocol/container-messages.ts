/**
 * Messages and methods of the agent's container calls (pod VMs: several crun containers added
 * and removed while the VM runs). Same protobufjs root and conventions as messages.ts.
 */
import type { GuestContainerStats } from '../../core/pod-agent.js';
import { codec, codecs } from './messages.js';

export interface ContainerFile { name: string; content: Uint8Array; mode?: number }
export interface CreateContainerRequest {
  containerId: string;
  diskSerial: string;
  configJson: Uint8Array;
  files?: ContainerFile[];
  sandboxId?: string;
  shareNamespaces?: string[];
}
export interface StartContainerRequest { containerId: string; terminal?: boolean; rows?: number; cols?: number }
export interface ExecContainerRequest { containerId: string; execId: string; processJson: Uint8Array; terminal?: boolean; rows?: number; cols?: number }
export interface ContainerRequest { containerId: string }
export interface UpdateContainerRequest { containerId: string; resourcesJson: Uint8Array }
export interface KillContainerRequest { containerId: string; signal: string; all?: boolean }
export interface ContainerStatus { oomKills: number; paused: boolean }
/** The cgroup v2 numbers; the same shape the core sees (type only: nothing of the core runs in the guest). */
export type ContainerStatsResponse = GuestContainerStats;
export interface ContainerPidsResponse { pids: number[] }

export const containerCodecs = {
  CreateContainerRequest: codec<CreateContainerRequest>('CreateContainerRequest'),
  StartContainerRequest: codec<StartContainerRequest>('StartContainerRequest'),
  ExecContainerRequest: codec<ExecContainerRequest>('ExecContainerRequest'),
  ContainerRequest: codec<ContainerRequest>('ContainerRequest'),
  UpdateContainerRequest: codec<UpdateContainerRequest>('UpdateContainerRequest'),
  KillContainerRequest: codec<KillContainerRequest>('KillContainerRequest'),
  ContainerStatus: codec<ContainerStatus>('ContainerStatus'),
  ContainerStatsResponse: codec<ContainerStatsResponse>('ContainerStatsResponse'),
  ContainerPidsResponse: codec<ContainerPidsResponse>('ContainerPidsResponse'),
};

/** Container method names and their codecs; the agent and the daemon both use this table. */
export const containerMethods = {
  CreateContainer: { request: containerCodecs.CreateContainerRequest, response: codecs.Empty },
  StartContainer: { request: containerCodecs.StartContainerRequest, response: codecs.ProcessStarted },
  ExecContainer: { request: containerCodecs.ExecContainerRequest, response: codecs.ProcessStarted },
  KillContainer: { request: containerCodecs.KillContainerRequest, response: codecs.Empty },
  PauseContainer: { request: containerCodecs.ContainerRequest, response: codecs.Empty },
  ResumeContainer: { request: containerCodecs.ContainerRequest, response: codecs.Empty },
  DeleteContainer: { request: containerCodecs.ContainerRequest, response: codecs.Empty },
  UpdateContainer: { request: containerCodecs.UpdateContainerRequest, response: codecs.Empty },
  GetContainerStatus: { request: containerCodecs.ContainerRequest, response: containerCodecs.ContainerStatus },
  ContainerStats: { request: containerCodecs.ContainerRequest, response: containerCodecs.ContainerStatsResponse },
  ContainerPids: { request: containerCodecs.ContainerRequest, response: containerCodecs.ContainerPidsResponse },
} as const;

export type ContainerMethod = keyof typeof containerMethods;

/** containerd's identifier rule for task and exec ids, so they are safe as file and cgroup names too. */
const IDENTIFIER = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
export const MAX_IDENTIFIER_LENGTH = 76;

/** Why `id` is not a valid container or exec id, or undefined when it is. */
export function identifierProblem(what: string, id: string): string | undefined {
  if (IDENTIFIER.test(id) && id.length <= MAX_IDENTIFIER_LENGTH) return undefined;
  return `${what} "${id}" is not a valid identifier (letters, digits and . _ - between them, at most ${MAX_IDENTIFIER_LENGTH})`;
}

/** The process id of a container's init process and of one of its execs. */
export function containerProcessId(containerId: string, execId?: string): string {
  return execId ? `${containerId}/${execId}` : containerId;
}
