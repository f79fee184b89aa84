#!/usr/bin/env bash
# Sets up a fresh Debian machine for Sekimori: Node 24 (from the npm registry when the system
# Node is older), npm packages, build. With --test, also the Debian packages every test tier
# needs (QEMU kernel tier, PAM tier, browser tier, network namespaces), so no tier skips.
set -euo pipefail
cd "$(dirname "$0")/.."
with_test=0
[[ "${1:-}" == "--test" ]] && with_test=1

if [[ $with_test == 1 ]]; then
  pkgs=(gcc make libc6-dev libpam0g-dev pamtester oathtool libpam-modules
        qemu-system-x86 udev busybox-static cpio kmod iproute2 util-linux
        chromium fonts-noto-cjk dpkg-dev e2fsprogs passwd openssl
        debootstrap wixl msitools gcc-mingw-w64-x86-64 osslsigncode dosfstools
        dbus-daemon libglib2.0-bin python3-dbus python3-gi xvfb dunst x11-apps
        dconf-cli gsettings-desktop-schemas
        rsyslog rsyslog-gnutls
        faketime)
  missing=()
  for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
  if (( ${#missing[@]} )); then
    echo "sekimori setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

bin=$(scripts/node24.sh)
export PATH="$bin:$PATH"
export npm_config_nodedir="$(dirname "$bin")"
echo "sekimori setup: using Node $(node --version)"
npm ci --no-audit --no-fund --loglevel=error
scripts/n24 scripts/build.sh

if [[ $with_test == 1 ]]; then
  # Each test tier may bring its own provisioning (e.g. the QEMU tier fetches Debian's kernel package).
  for p in test/e2e/*/provision.sh; do
    [[ -f "$p" ]] && bash "$p"
  done
  # The previous release's programs for test/integration/compat.test.ts (cached under .tools/; needs git history).
  node scripts/previous-release.mjs || echo "sekimori setup: previous release not built (no git history?) — compat tests will skip"
fi
echo "sekimori setup: done"
