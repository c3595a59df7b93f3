/** Human-readable output of the CLI: tables and durations. */
import Table from 'cli-table3';
import { vmKind, type Vm } from '../core/vm.js';

export function shortId(id: string): string {
  return id.slice(0, 12);
}

export function age(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** A borderless, left-aligned table like `docker ps` prints. */
export function plainTable(head: string[], rows: (string | number)[][]): string {
  const table = new Table({
    head,
    style: { head: [], border: [], compact: true },
    chars: { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ' },
  });
  table.push(...rows);
  return table.toString().split('\n').map((l) => l.trimEnd().replace(/^ /, '')).join('\n');
}

export function vmTable(vms: readonly Vm[]): string {
  return plainTable(
    ['ID', 'NAME', 'STATE', 'PROVIDER', 'PID', 'IP', 'CPUS', 'MEMORY', 'CREATED'],
    vms.map((vm) => [shortId(vm.id), vm.name, vm.state, vm.provider, vm.pid ?? '-', vm.network?.ip ?? '-', vm.spec.cores, `${vm.spec.memoryMib} MiB`, age(vm.createdAt)]),
  );
}

export function vmSummary(vm: Vm): string {
  const lines = [
    `ID:        ${vm.id}`,
    `Name:      ${vm.name}`,
    `State:     ${vm.state}${vm.error ? ` (${vm.error.code}: ${vm.error.message})` : ''}`,
    `Provider:  ${vm.provider}${vm.pid ? ` (pid ${vm.pid})` : ''}${vm.providerReason ? `; ${vm.providerReason}` : ''}`,
    `Created:   ${vm.createdAt}`,
    `Started:   ${vm.startedAt ?? '-'}`,
    `CPUs:      ${vm.spec.cores}`,
    `Memory:    ${vm.spec.memoryMib} MiB`,
    `Kernel:    ${vm.spec.kernel ?? '(default)'}`,
    `Drive:     ${driveSummary(vm)}`,
  ];
  if (vm.spec.image) lines.push(`Image:     ${vm.spec.image}`);
  if (vm.network) lines.push(`Network:   ${vm.network.ip} via ${vm.network.gateway} (mac ${vm.network.mac}, host ${vm.network.tap})`);
  const m = vm.spec.metadata;
  if (m) lines.push(`Metadata:  ${Object.keys(m.values).length} values, ${Object.keys(m.secrets).length} secrets, ${m.files.length} files, ${m.sshAuthorizedKeys.length} SSH keys`);
  return lines.join('\n');
}

function driveSummary(vm: Vm): string {
  switch (vmKind(vm.spec)) {
    case 'drive':
      return `${vm.spec.drive}${vm.spec.driveReadOnly ? ' (read-only)' : ''}`;
    case 'image':
      return '(guest system image; the workload runs from Image)';
    case 'kernel':
      return '(none: the kernel and initrd alone)';
  }
}

/** 1536 → "1.5 KiB": sizes in powers of 1024, one decimal. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}
