#!/bin/sh
# Hypercore stage-1 init: PID 1 of the small initramfs built by src/guest/initramfs.ts.
# The guest kernel has its virtio drivers as modules, so this loads them, mounts the root disk and
# hands over to the root's own init, like a distribution initramfs but in a few lines of busybox sh.
#
# Kernel command line (all optional):
#   hc.root=<dev>         root block device, with or without /dev/ (default vda)
#   hc.rootfstype=<fs>    filesystem type (default ext4)
#   hc.rootflags=<opts>   mount options, e.g. ro or rw (default rw)
#   hc.init=<path>        init on the root (default /sbin/init)
#   hc.mods=<a,b,...>     modules to load instead of /etc/hypercore/modules (e.g. a minimal set)
#   hc.poweroff=reboot    power off by rebooting (Firecracker ends only when its guest reboots)
# On any failure it prints one "[hypercore-init] error: ..." line and powers off, so that QEMU run
# with -no-reboot exits instead of hanging at a shell nobody can reach.

export PATH=/bin

log() { echo "[hypercore-init] $*"; }

die() {
  echo "[hypercore-init] error: $*"
  case " $(cat /proc/cmdline 2>/dev/null) " in *" hc.poweroff=reboot "*) reboot -f ;; esac
  poweroff -f
  # Not reached when power-off works; otherwise a reboot, which -no-reboot also turns into an exit.
  sleep 2
  reboot -f
  exit 1
}

# /proc/cmdline is split into words below; globbing would expand a stray '*' against the initramfs.
set -f

mkdir -p /proc /sys /dev /newroot
[ -e /proc/self ] || mount -t proc proc /proc || die "cannot mount /proc"
[ -d /sys/kernel ] || mount -t sysfs sysfs /sys || die "cannot mount /sys"
# The kernel has DEVTMPFS but not DEVTMPFS_MOUNT, so /dev is ours to mount.
[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev || die "cannot mount devtmpfs on /dev"

root=vda
fstype=ext4
flags=rw
init=/sbin/init
mods=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    hc.root=*) root=${arg#hc.root=} ;;
    hc.rootfstype=*) fstype=${arg#hc.rootfstype=} ;;
    hc.rootflags=*) flags=${arg#hc.rootflags=} ;;
    hc.init=*) init=${arg#hc.init=} ;;
    hc.mods=*) mods=$(echo "${arg#hc.mods=}" | tr , ' ') ;;
  esac
done
root=${root#/dev/}

# Order matters (virtio before virtio_blk, ...); the builder wrote a dependency-sorted list.
[ -n "$mods" ] || mods=$(cat /etc/hypercore/modules)
for m in $mods; do
  # Already loaded (or built in with parameters): /sys/module uses '_' where file names may use '-'.
  [ -d "/sys/module/${m//-/_}" ] && continue
  if [ ! -f "/lib/modules/$m.ko" ]; then
    log "module $m is not in the initramfs, skipped"
    continue
  fi
  insmod "/lib/modules/$m.ko" || log "warning: insmod $m failed"
done

# virtio devices are probed asynchronously after insmod; wait up to ~5 s for the disk node.
i=0
while [ ! -b "/dev/$root" ]; do
  if [ $i -ge 50 ]; then
    devs=$(echo $(ls /sys/class/block 2>/dev/null))
    die "root device /dev/$root did not appear within 5 s (block devices: ${devs:-none}); check hc.root= and that the disk is attached as virtio-blk"
  fi
  usleep 100000
  i=$((i + 1))
done

mount -t "$fstype" -o "$flags" "/dev/$root" /newroot || die "cannot mount /dev/$root (type $fstype, options $flags) on /newroot"
# -L as well: an absolute symlink (e.g. to /lib/systemd/systemd) does not resolve from here.
[ -e "/newroot$init" ] || [ -L "/newroot$init" ] || die "$init not found on /dev/$root"

for d in dev proc sys; do
  [ -d "/newroot/$d" ] || mkdir -p "/newroot/$d" 2>/dev/null
  mount --move "/$d" "/newroot/$d" || { log "warning: /$d could not be moved to the new root"; umount -l "/$d"; }
done

log "root /dev/$root mounted, switching to $init"
exec switch_root /newroot "$init"
