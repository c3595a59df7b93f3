/**
 * The agent protocol, `hypercore.agent.v1`, spoken over TTRPC between hypercored (client) and the
 * agent in the guest (server). Kept as protobuf text in code, so the agent bundle (esbuild, one
 * file) and the daemon (tsc) load the very same definition without shipping a .proto file.
 */
export const AGENT_SERVICE = 'hypercore.agent.v1.Agent';

/** The channel's name: QEMU's virtserialport name, and the guest's /sys/class/virtio-ports/<p>/name. */
export const AGENT_PORT_NAME = 'hypercore.agent';

/** The vsock port the agent listens on when the VMM's channel is vsock (Firecracker, Cloud Hypervisor). */
export const AGENT_VSOCK_PORT = 1024;

export const AGENT_PROTO = `
syntax = "proto3";
package hypercore.agent.v1;

// A process to run: in the VM itself, or inside the workload's container.
message ProcessSpec {
  repeated string args = 1;      // argv; args[0] is looked up in PATH
  repeated string env = 2;       // KEY=VALUE
  string cwd = 3;
  string user = 4;               // uid[:gid] (numeric), empty = root
  bool terminal = 5;             // allocate a pseudo-terminal (stdout and stderr merged)
  uint32 rows = 6;
  uint32 cols = 7;
}

message Empty {}

message HelloRequest { string host_version = 1; }
message HelloResponse {
  string agent_version = 1;
  string node_version = 2;
  string kernel = 3;
  uint64 uptime_ms = 4;
  string boot_id = 5;            // changes when the guest reboots
  bool workload_started = 6;
}

message WorkloadLimits {
  uint64 memory_bytes = 1;       // 0 = no limit
  uint32 pids = 2;               // 0 = no limit
}

// Values and secrets the agent serves inside the guest at http://169.254.169.254/v1/metadata.
message MetadataValues {
  map<string, string> values = 1;
  map<string, string> secrets = 2;
}

// A file the agent writes into the workload's root filesystem before the workload starts.
message GuestFile {
  string path = 1;               // absolute, inside the workload's root filesystem
  uint32 mode = 2;               // permission bits, e.g. 0640
  uint32 uid = 3;
  uint32 gid = 4;
  bytes content = 5;
}

message StartWorkloadRequest {
  ProcessSpec process = 1;
  string image_disk_serial = 2;  // the virtio-blk serial of the image disk (e.g. "image")
  string scratch_disk_serial = 3; // optional: a raw scratch disk to join with overlayfs
  WorkloadLimits limits = 4;
  string hostname = 5;
  MetadataValues metadata = 6;   // replaces what the agent serves
  repeated GuestFile files = 7;
  repeated string ssh_authorized_keys = 8; // written to /root/.ssh/authorized_keys of the rootfs
  // Refused when a workload was already started in this boot, even one that has exited: the host
  // sends StartWorkload along with Hello, before it knows whether an earlier daemon did.
  bool once_per_boot = 9;
}

message ProcessStarted {
  string process_id = 1;         // "main" for the workload
  uint32 pid = 2;
}

message CreateProcessRequest {
  ProcessSpec process = 1;
  bool in_workload = 2;          // run inside the workload's container (crun exec)
}

// Client side of the Io stream. The first message names the process; later ones carry stdin and
// output credit. The client closing its side ends the stream (ttrpc has no cancel).
message IoInput {
  string process_id = 1;
  uint64 from_offset = 2;        // resume output from this offset (0 = everything still buffered)
  bytes stdin = 3;
  bool close_stdin = 4;
  // Output credit (first message): the agent sends at most this many output bytes beyond what the
  // client reported in consumed_bytes. 0 = no limit (the client reads as fast as the agent sends).
  uint64 window_bytes = 5;
  // Output bytes this stream's client has consumed so far (a running total), granting more credit.
  uint64 consumed_bytes = 6;
  // First message: the process waits for this reader. Bytes it has not read are kept, and the
  // process's output pauses once the reader is a whole output buffer behind (exec, the workload log).
  // Otherwise a reader that falls behind skips the evicted bytes (dropped_bytes tells how many).
  bool hold_output = 7;
  // First message of an Exec stream (instead of process_id): the process to start.
  CreateProcessRequest create = 8;
}

// Server side of the Io stream: output in order, then one last message with the exit status.
message IoOutput {
  uint32 fd = 1;                 // 1 stdout, 2 stderr
  bytes data = 2;
  uint64 offset = 3;             // offset of the first byte of data in the process's output
  bool exited = 4;
  int32 exit_code = 5;
  string signal = 6;             // e.g. SIGKILL when killed by a signal
  uint64 dropped_bytes = 7;      // output lost because the buffer overflowed before anyone read it
  ProcessStarted started = 8;    // first message of an Exec stream: the process it started
}

message WaitRequest { string process_id = 1; }
message ExitStatus {
  int32 exit_code = 1;
  string signal = 2;
}

message SignalRequest {
  string process_id = 1;
  string signal = 2;             // e.g. SIGTERM
}

message ResizeRequest {
  string process_id = 1;
  uint32 rows = 2;
  uint32 cols = 3;
}

message ProcessInfo {
  string process_id = 1;
  uint32 pid = 2;
  repeated string args = 3;
  bool terminal = 4;
  bool running = 5;
  int32 exit_code = 6;
  string signal = 7;
  bool in_workload = 8;
}
message ProcessList { repeated ProcessInfo processes = 1; }

message Stats {
  uint64 uptime_ms = 1;
  double load1 = 2;
  uint64 mem_total_bytes = 3;
  uint64 mem_available_bytes = 4;
  uint32 processes = 5;
}

message ShutdownRequest { bool reboot = 1; }

// Containers of a pod VM: several crun containers, each on its own root disk slot, added and
// removed while the VM runs (see agent/containers.ts). A container's init process has the
// process id of its container id; an exec's is "<container id>/<exec id>".
message ContainerFile {
  string name = 1;               // file name under the container's files/ directory (no '/')
  bytes content = 2;
  uint32 mode = 3;
}

message CreateContainerRequest {
  string container_id = 1;
  string disk_serial = 2;        // virtio-blk serial of the slot that holds the container's root disk
  bytes config_json = 3;         // OCI runtime config; the agent sets root.path and namespace paths
  repeated ContainerFile files = 4; // host files copied in (hosts, resolv.conf, ...) that config binds
  string sandbox_id = 5;         // join this container's namespaces listed in share_namespaces
  repeated string share_namespaces = 6; // ipc, uts, pid
}

message StartContainerRequest {
  string container_id = 1;
  bool terminal = 2;             // a pty instead of pipes (stdout and stderr merged)
  uint32 rows = 3;
  uint32 cols = 4;
}

message ExecContainerRequest {
  string container_id = 1;
  string exec_id = 2;
  bytes process_json = 3;        // OCI process (args, env, cwd, user, ...), as crun exec --process takes it
  bool terminal = 4;
  uint32 rows = 5;
  uint32 cols = 6;
}

message ContainerRequest { string container_id = 1; }

message UpdateContainerRequest {
  string container_id = 1;
  bytes resources_json = 2;      // OCI LinuxResources, as crun update --resources takes them
}

message KillContainerRequest {
  string container_id = 1;
  string signal = 2;             // e.g. SIGTERM or 15
  bool all = 3;                  // every process of the container, not only its init
}

message ContainerStatus {
  uint64 oom_kills = 1;          // memory.events oom_kill of the container's cgroup
  bool paused = 2;
}

// cgroup v2 files of the container's cgroup, as read: cpu.stat, memory.stat and memory.events as
// key/value maps, single-value files as fields (0 where a file is missing or says "max").
message IoDeviceStat {
  uint32 major = 1;
  uint32 minor = 2;
  map<string, uint64> values = 3; // rbytes, wbytes, rios, wios, ...
}
message ContainerStatsResponse {
  map<string, uint64> cpu = 1;
  map<string, uint64> memory = 2;
  map<string, uint64> memory_events = 3;
  uint64 memory_current = 4;
  uint64 memory_max = 5;
  uint64 swap_current = 6;
  uint64 swap_max = 7;
  uint64 pids_current = 8;
  uint64 pids_max = 9;
  repeated IoDeviceStat io = 10;
}

message ContainerPidsResponse { repeated uint32 pids = 1; }

// A guest resumed from a snapshot is some other VM's memory: this makes it its own VM.
message GuestNetwork {
  string mac = 1;
  string address = 2;            // A.B.C.D/N on eth0
  string gateway = 3;
  repeated string dns = 4;
}
message RestoredRequest {
  uint64 unix_time_ms = 1;       // the host's clock; the guest's jumps to it
  bytes entropy = 2;             // mixed into the kernel's pool, which then reseeds
  string hostname = 3;           // the VM's and the workload's
  string machine_id = 4;         // 32 hex digits, the workload's /etc/machine-id
  GuestNetwork network = 5;      // unset: the VM has no network
}

service Agent {
  rpc Hello(HelloRequest) returns (HelloResponse);
  rpc StartWorkload(StartWorkloadRequest) returns (ProcessStarted);
  rpc CreateProcess(CreateProcessRequest) returns (ProcessStarted);
  rpc Io(stream IoInput) returns (stream IoOutput);
  // CreateProcess and Io in one call (one round trip less): the first IoInput carries \`create\` and
  // the first IoOutput \`started\`; then as Io, the output held for this reader from byte 0.
  rpc Exec(stream IoInput) returns (stream IoOutput);
  rpc Wait(WaitRequest) returns (ExitStatus);
  rpc Signal(SignalRequest) returns (Empty);
  rpc Resize(ResizeRequest) returns (Empty);
  rpc ListProcesses(Empty) returns (ProcessList);
  rpc GetStats(Empty) returns (Stats);
  rpc Shutdown(ShutdownRequest) returns (Empty);
  rpc CreateContainer(CreateContainerRequest) returns (Empty);
  rpc StartContainer(StartContainerRequest) returns (ProcessStarted);
  rpc ExecContainer(ExecContainerRequest) returns (ProcessStarted);
  rpc KillContainer(KillContainerRequest) returns (Empty);
  rpc PauseContainer(ContainerRequest) returns (Empty);
  rpc ResumeContainer(ContainerRequest) returns (Empty);
  rpc DeleteContainer(ContainerRequest) returns (Empty);
  rpc UpdateContainer(UpdateContainerRequest) returns (Empty);
  rpc GetContainerStatus(ContainerRequest) returns (ContainerStatus);
  rpc ContainerStats(ContainerRequest) returns (ContainerStatsResponse);
  rpc ContainerPids(ContainerRequest) returns (ContainerPidsResponse);
  rpc SetMetadata(MetadataValues) returns (Empty); // replaces what the agent serves, at once
  rpc Restored(RestoredRequest) returns (Empty);
}
`;
