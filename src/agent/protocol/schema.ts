/**
 * Names of the agent protocol, `hypercore.agent.v1`, spoken over TTRPC between hypercored (client)
 * and the agent in the guest (server). Its messages are defined in agent.proto, from which the build
 * generates the static codecs messages.ts uses.
 */
export const AGENT_SERVICE = 'hypercore.agent.v1.Agent';

/** The channel's name: QEMU's virtserialport name, and the guest's /sys/class/virtio-ports/<p>/name. */
export const AGENT_PORT_NAME = 'hypercore.agent';

/** The vsock port the agent listens on when the VMM's channel is vsock (Firecracker, Cloud Hypervisor). */
export const AGENT_VSOCK_PORT = 1024;
