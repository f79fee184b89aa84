#!/usr/bin/env bash
# Real-kernel tier provisioning: Debian's own kernel (apt-get download + dpkg -x, nothing is
# installed on the host) and a busybox initramfs that loads the USB/SCSI/virtio/9p modules, mounts
# the host's root read-only over 9p and chroots into it. Everything lands in .tools/qemu/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../../.."
root=$PWD
out=$root/.tools/qemu
mkdir -p "$out"

for cmd in apt-get dpkg busybox cpio gzip python3 xz; do
  command -v "$cmd" >/dev/null || { echo "qemu tier provision: missing $cmd (apt-get install busybox-static cpio)" >&2; exit 1; }
done
bb=$(command -v busybox)

if [[ ! -f $out/kernel/VERSION ]]; then
  # The metapackage names the current ABI; else take the newest plain -amd64 image apt offers here.
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -1)
  if [[ -z $pkg ]]; then
    pkg=$(apt-cache search '^linux-image-[0-9.]+-[0-9]+-amd64$' | awk '{print $1}' | sort -V | tail -1)
  fi
  [[ -n $pkg ]] || { echo "qemu tier provision: no linux-image-*-amd64 package known to apt (run apt-get update)" >&2; exit 1; }
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -q "$pkg")
  rm -rf "$out/kernel" && mkdir -p "$out/kernel"
  dpkg -x "$tmp"/*.deb "$out/kernel"
  rm -rf "$tmp"
  kver=$(ls "$out/kernel/lib/modules" | head -1)
  echo "$kver" > "$out/kernel/VERSION"
  echo "qemu tier provision: kernel $pkg ($kver)"
fi
kver=$(cat "$out/kernel/VERSION")
moddir=$out/kernel/lib/modules/$kver
# The .deb carries no modules.dep (the postinst makes it): build it with kmod's depmod, off-host.
if [[ ! -f $moddir/modules.dep ]]; then
  command -v depmod >/dev/null || PATH=$PATH:/sbin:/usr/sbin
  depmod -b "$out/kernel" "$kver"
fi

# Modules the guest needs, dependencies resolved from the kernel's own modules.dep, in load order.
want=(virtio_pci virtio_blk virtio_net 9p 9pnet_virtio
      xhci_pci usb_storage uas sd_mod sr_mod usbhid hid_generic
      usbnet cdc_ether rndis_host cdc_ncm crc32c_generic ext4
      sdhci_pci mmc_block virtio_scsi)
python3 - "$moddir" "${want[@]}" > "$out/modules.order" <<'PY'
import sys, os
moddir, want = sys.argv[1], sys.argv[2:]
deps, byname = {}, {}
for line in open(os.path.join(moddir, 'modules.dep')):
    mod, _, rest = line.partition(':')
    deps[mod] = rest.split()
    name = os.path.basename(mod).split('.ko')[0].replace('-', '_')
    byname[name] = mod
order, seen = [], set()
def visit(m):
    if m in seen: return
    seen.add(m)
    for d in deps.get(m, []): visit(d)
    order.append(m)
for w in want:
    m = byname.get(w.replace('-', '_'))
    if m is None:
        print(f'qemu tier provision: module {w} not in this kernel', file=sys.stderr); continue
    visit(m)
print('\n'.join(order))
PY

ird=$(mktemp -d)
mkdir -p "$ird"/{bin,proc,sys,dev,host,state,mods}
cp "$bb" "$ird/bin/busybox"
for a in sh mount umount insmod mkdir cat echo sleep chroot switch_root ls ln sed; do ln -sf busybox "$ird/bin/$a"; done
while read -r m; do
  [[ -n $m ]] || continue
  base=$(basename "$m")
  case "$base" in
    *.ko.xz) xz -dc "$moddir/$m" > "$ird/mods/${base%.xz}"; base=${base%.xz} ;;
    *.ko.zst) zstd -qdc "$moddir/$m" > "$ird/mods/${base%.zst}"; base=${base%.zst} ;;
    *) cp "$moddir/$m" "$ird/mods/$base" ;;
  esac
  echo "$base" >> "$ird/mods/ORDER"
done < "$out/modules.order"

cat > "$ird/init" <<'INIT'
#!/bin/sh
# Guest PID 1: load drivers, mount the host root (read-only 9p), chroot and run the test script
# named on the kernel command line (sekimori.script=/abs/path on the host).
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
script=$(sed -n 's/.*sekimori\.script=\([^ ]*\).*/\1/p' /proc/cmdline)
usbopts=$(sed -n 's/.*sekimori\.usbcore=\([^ ]*\).*/\1/p' /proc/cmdline | sed 's/,/ /g')
for m in $(cat /mods/ORDER); do
  case "$m" in
    usbcore.ko) insmod /mods/$m $usbopts ;;
    *) insmod /mods/$m 2>/dev/null ;;
  esac
done
mount -t 9p -o trans=virtio,version=9p2000.L,ro hostroot /host || { echo "SEKIMORI-GUEST: 9p mount failed"; poweroff -f; }
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mount -t tmpfs tmpfs /host/tmp
mount -t tmpfs tmpfs /host/run
mkdir -p /host/dev/pts && mount -t devpts devpts /host/dev/pts
if grep -q statehost /sys/bus/virtio/drivers/9pnet_virtio/*/mount_tag 2>/dev/null; then
  mkdir -p /host/run/state && mount -t 9p -o trans=virtio,version=9p2000.L statehost /host/run/state
fi
# The checkout itself, at its host path: it may live under /tmp or /run, which the tmpfs above hides.
repo=$(sed -n 's/.*sekimori\.repo=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$repo" ] && grep -q checkout /sys/bus/virtio/drivers/9pnet_virtio/*/mount_tag 2>/dev/null; then
  mkdir -p "/host$repo" 2>/dev/null
  mount -t 9p -o trans=virtio,version=9p2000.L,ro checkout "/host$repo" || echo "SEKIMORI-GUEST: checkout mount failed"
fi
echo "SEKIMORI-GUEST: userland up"
# switch_root, not chroot: systemd-udevd and udevadm refuse to work inside a chroot.
exec switch_root /host /bin/sh -c "/bin/sh $script; echo SEKIMORI-GUEST: script exit \$?; sync; echo o > /proc/sysrq-trigger; sleep 10"
INIT
chmod +x "$ird/init"
ln -sf busybox "$ird/bin/grep"; ln -sf busybox "$ird/bin/poweroff"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initramfs.gz"
rm -rf "$ird"
cp "$out/kernel/boot/vmlinuz-$kver" "$out/vmlinuz"
echo "qemu tier provision: $out/vmlinuz + $out/initramfs.gz ($(wc -l < "$out/modules.order") modules)"
