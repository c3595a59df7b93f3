#!/bin/busybox sh
# /sbin/init of the Hypercore demo root (src/guest/demo-rootfs.ts): proves a guest is up by
# printing a marker line and a few facts on the console, then idles forever as PID 1.
# The stage-1 init normally moved /dev, /proc and /sys here already; mount them when booted without it.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
[ -e /proc/self ] || mount -t proc proc /proc
[ -d /sys/kernel ] || mount -t sysfs sysfs /sys
[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev
# tmpfs so the demo also works from a read-only root (hc.rootflags=ro).
# (busybox-static on Debian has no `mountpoint` applet, hence /proc/mounts.)
grep -q ' /tmp ' /proc/mounts || mount -t tmpfs tmpfs /tmp
hostname -F /etc/hostname

# Networking from the kernel command line (hc.ip=ADDR/PREFIX hc.gw=GW), as Hypercore passes it.
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    hc.ip=*) ip4=${arg#hc.ip=} ;;
    hc.gw=*) gw=${arg#hc.gw=} ;;
  esac
done
ip link set lo up
if [ -n "$ip4" ]; then
  i=0
  while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  ip addr add "$ip4" dev eth0 && ip link set eth0 up && echo "hypercore-demo: eth0 $ip4"
  [ -n "$gw" ] && ip route add default via "$gw"
fi

cat /etc/hypercore-demo/marker
uname -a
echo "hypercore-demo: cpus=$(grep -c '^processor' /proc/cpuinfo) $(grep '^MemTotal' /proc/meminfo | tr -s ' ')"

# Hook for tests and demos: extra work at boot, added with buildDemoRootfs({ files }).
[ -x /etc/rc.local ] && /etc/rc.local

# PID 1 must never exit (the kernel would panic); sleeping in a loop also reaps nothing, which is fine here.
while :; do sleep 3600; done
