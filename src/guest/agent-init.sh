#!/bin/busybox sh
# /sbin/init of the Hypercore SYSTEM image (src/guest/system-image.ts): PID 1 after the stage-1
# initramfs switch_roots here. Prepares the writable bits around the read-only root, then runs the
# agent (`node /agent/agent.js`) and restarts it when it exits.
#
# Kernel command line (optional):
#   hc.hostname=<name>    hostname (default: /etc/hostname)
#   hc.agent=vsock:<port> the agent listens on vsock <port> (Firecracker, Cloud Hypervisor) instead
#                         of the virtio-serial port
#   hc.poweroff=reboot    power off by rebooting: Firecracker (x86) ends only when its guest reboots
#   hc.machine_id=<hex>   the VM's machine id, bound over the workload's /etc/machine-id
#   hc.metadata=host      the host serves 169.254.169.254 (NAT bridge): the agent does not
#
# PID 1 stays this shell for the whole life of the VM: ash's wait uses waitpid(-1), so orphans that
# the kernel re-parents to PID 1 are reaped while we wait for the agent. The agent runs in the
# background + `wait` (not in the foreground) because only `wait` is interrupted by trapped signals;
# a foreground child would delay the power-off trap until the agent exited on its own.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
# One libuv threadpool thread stays parked in read() on the virtio-serial port (guest.md §3), so the
# default 4 would leave the agent's fs/crypto/dns work with only 3.
export UV_THREADPOOL_SIZE=8
umask 022
cd /

log() { echo "[hypercore-init] $*"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

shutdown() {
  log "$1, powering off (uptime $(uptime_s) s)"
  [ -n "$agent" ] && kill -TERM "$agent" 2>/dev/null
  sync
  case " $(cat /proc/cmdline) " in *" hc.poweroff=reboot "*) reboot -f ;; esac
  poweroff -f
  # Not reached when power-off works; a reboot is turned into an exit by QEMU's -no-reboot.
  sleep 2
  reboot -f
}
# TERM/PWR: the kernel's and a VMM's "please stop"; USR1/USR2: what busybox `halt`/`poweroff`
# (without -f) send to PID 1, so the agent may simply run /bin/poweroff.
trap 'shutdown "got SIGTERM"' TERM
trap 'shutdown "got SIGPWR"' PWR
trap 'shutdown "got SIGUSR1 (halt)"' USR1
trap 'shutdown "got SIGUSR2 (poweroff)"' USR2
# INT: the kernel's signal to init for Ctrl-Alt-Del (a VMM's SendCtrlAltDel).
trap 'shutdown "got SIGINT (Ctrl-Alt-Del)"' INT

# /proc/cmdline is split into words below; globbing would expand a stray '*' against the root.
set -f

# Stage 1 moved these here; mount them only when booted some other way.
[ -e /proc/self ] || mount -t proc proc /proc
[ -d /sys/kernel ] || mount -t sysfs sysfs /sys
# The kernel has DEVTMPFS but not DEVTMPFS_MOUNT.
[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev

mounted() { grep -q " $1 " /proc/mounts; }
# devpts with a private ptmx usable by everyone: crun and terminals allocate ptys through it.
mkdir -p /dev/pts /dev/shm 2>/dev/null
mounted /dev/pts || mount -t devpts -o nosuid,noexec,ptmxmode=666,gid=5,mode=620 devpts /dev/pts
mounted /dev/shm || mount -t tmpfs -o nosuid,nodev,mode=1777 shm /dev/shm
# The root is read-only: everything writable lives in RAM.
mounted /run || mount -t tmpfs -o nosuid,nodev,mode=755 run /run
mounted /tmp || mount -t tmpfs -o nosuid,nodev,mode=1777 tmp /tmp
# /run/hc/rootfs exists on the image too, but the tmpfs above hides it.
mkdir -p /run/hc/rootfs
mounted /sys/fs/cgroup || mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup

ip link set lo up

# Stage 1 normally loaded overlay already (with the virtio modules); this covers images whose
# initramfs did not carry it but whose root does.
if [ ! -d /sys/module/overlay ] && [ -f /lib/modules/hc/overlay.ko ]; then
  insmod /lib/modules/hc/overlay.ko || log "warning: insmod overlay failed"
fi

name=
ip4=
gw=
dns=
agent_args=
mid=
metadata_on_host=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    hc.hostname=*) name=${arg#hc.hostname=} ;;
    hc.ip=*) ip4=${arg#hc.ip=} ;;
    hc.gw=*) gw=${arg#hc.gw=} ;;
    hc.dns=*) dns=${arg#hc.dns=} ;;
    hc.agent=vsock:*)
      port=${arg#hc.agent=vsock:}
      # Digits only: the value becomes an argument of the agent.
      case "$port" in
        '' | *[!0-9]*) log "warning: ignoring $arg (the port must be a number)" ;;
        *) agent_args="--vsock $port" ;;
      esac
      ;;
    hc.machine_id=*) mid=${arg#hc.machine_id=} ;;
    hc.metadata=host) metadata_on_host=1 ;;
  esac
done
if [ -n "$metadata_on_host" ]; then
  # The host answers 169.254.169.254 through the gateway (a NAT bridge): the guest routes it
  # there and listens on no port for it, so every port is the workload's.
  agent_args="$agent_args --metadata-address none"
else
  # The agent's metadata endpoint (169.254.169.254:80) lives on loopback: the workload shares
  # this network, nothing outside the guest routes to it. arp_ignore=1: no ARP answers for it on eth0.
  ip addr add 169.254.169.254/32 dev lo
  echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore
fi
if [ -n "$name" ]; then hostname "$name"; else hostname -F /etc/hostname; fi
# The agent rewrites it in place when the VM is restored from a snapshot (a new VM's id).
[ -n "$mid" ] && echo "$mid" > /run/hc/machine-id

# Networking: the host leased the address and put it on the command line (this kernel has no ip=).
if [ -n "$ip4" ]; then
  i=0
  while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  if ip addr add "$ip4" dev eth0 && ip link set eth0 up; then
    [ -n "$gw" ] && ip route add default via "$gw"
    log "eth0 $ip4 gateway ${gw:-none}"
  else
    log "warning: could not configure eth0 with $ip4"
  fi
  # The agent binds /run/hc/resolv.conf into workloads.
  : > /run/hc/resolv.conf
  for server in $(echo "$dns" | tr ',' ' '); do echo "nameserver $server" >> /run/hc/resolv.conf; done
fi

set +f

# Restart policy: at most 5 restarts within any 60 s window; the 6th exit powers off, so a broken
# agent ends the VM (visible to the host) instead of looping forever.
restarts=
agent=
log "starting agent uptime=$(uptime_s)"
while :; do
  # shellcheck disable=SC2086 # agent_args holds only "--vsock <digits>" and "--metadata-address none"
  node /agent/agent.js $agent_args &
  agent=$!
  wait "$agent"
  rc=$?
  agent=
  log "agent exited rc=$rc uptime=$(uptime_s)"
  now=$(cut -d. -f1 /proc/uptime)
  recent=
  count=0
  for t in $restarts; do
    if [ $((now - t)) -lt 60 ]; then recent="$recent $t"; count=$((count + 1)); fi
  done
  if [ $count -ge 5 ]; then
    shutdown "agent exited $((count + 1)) times within 60 s"
  fi
  restarts="$recent $now"
  sleep 1
  log "restarting agent uptime=$(uptime_s)"
done
