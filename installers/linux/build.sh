#!/usr/bin/env bash
# Native pieces of the Linux installer, called by scripts/build.sh: the PAM module
# dist/pam/pam_sekimori.so and dist/pam/sekimori-peercred, the helper with which the agent learns who
# is on its unlock socket (when gcc and the libpam headers are present).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/installers/linux/pam"
out="$root/dist/pam"
# The pre-exec helper needs only gcc and the kernel's fanotify header (libc6-dev): built apart from PAM.
if command -v gcc >/dev/null 2>&1 && [[ -f /usr/include/x86_64-linux-gnu/sys/fanotify.h || -f /usr/include/sys/fanotify.h ]]; then
  mkdir -p "$root/dist/exec-guard"
  make -s -C "$root/installers/linux/exec-guard" SRC="$root/agent/software/linux/preexec/sekimori-exec-guard.c" OUT="$root/dist/exec-guard/sekimori-exec-guard"
  echo "sekimori build: dist/exec-guard/sekimori-exec-guard"
  # The 持ち出しログ helper (fanotify FAN_CLOSE_WRITE): same needs as the pre-exec helper.
  mkdir -p "$root/dist/file-log"
  make -s -C "$root/installers/linux/file-log" SRC="$root/agent/usb/filelog/linux/sekimori-file-log.c" OUT="$root/dist/file-log/sekimori-file-log"
  echo "sekimori build: dist/file-log/sekimori-file-log"
else
  echo "sekimori build: pre-exec and file-log helpers NOT built — needs gcc and libc6-dev (apt-get install gcc libc6-dev)" >&2
fi
if ! command -v gcc >/dev/null 2>&1 || [[ ! -f /usr/include/security/pam_modules.h ]]; then
  echo "sekimori build: PAM module NOT built — needs gcc and libpam headers (apt-get install gcc make libpam0g-dev)" >&2
  exit 0
fi
mkdir -p "$out"
make -s -C "$src" OUT="$out/pam_sekimori.so" HELPER="$out/sekimori-peercred"
cp "$src/sekimori-auth" "$out/sekimori-auth"
echo "sekimori build: dist/pam/pam_sekimori.so dist/pam/sekimori-peercred"
