#!/usr/bin/env bash
# Native pieces of the Linux installer, called by scripts/build.sh: the PAM module
# dist/pam/pam_sekimori.so and dist/pam/sekimori-peercred, the helper with which the agent learns who
# is on its unlock socket (when gcc and the libpam headers are present).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/installers/linux/pam"
out="$root/dist/pam"
if ! command -v gcc >/dev/null 2>&1 || [[ ! -f /usr/include/security/pam_modules.h ]]; then
  echo "sekimori build: PAM module NOT built — needs gcc and libpam headers (apt-get install gcc make libpam0g-dev)" >&2
  exit 0
fi
mkdir -p "$out"
make -s -C "$src" OUT="$out/pam_sekimori.so" HELPER="$out/sekimori-peercred"
cp "$src/sekimori-auth" "$out/sekimori-auth"
echo "sekimori build: dist/pam/pam_sekimori.so dist/pam/sekimori-peercred"
