#!/usr/bin/env bash
# Native piece of the Windows package, called by scripts/build.sh: the service wrapper
# dist/windows/sekimori-service.exe (x86_64-w64-mingw32-gcc, with its Event Log message table),
# when the MinGW toolchain is present. The agent executable and the MSI are made by
# installers/windows/package.sh (npm run package).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/installers/windows/service"
out="$root/dist/windows"
cc=x86_64-w64-mingw32-gcc
if ! command -v "$cc" >/dev/null 2>&1 || ! command -v x86_64-w64-mingw32-windmc >/dev/null 2>&1; then
  echo "sekimori build: Windows service wrapper NOT built — needs MinGW (apt-get install gcc-mingw-w64-x86-64)" >&2
  exit 0
fi
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
x86_64-w64-mingw32-windmc -h "$work" -r "$work" "$src/sekimori-service.mc"
x86_64-w64-mingw32-windres -i "$work/sekimori-service.rc" -I "$work" -O coff -o "$work/messages.o"
# -static: no MinGW runtime DLLs to ship; -municode: wmain.
"$cc" -O2 -Wall -Wextra -Wno-missing-field-initializers -Werror -municode -static -s -o "$work/sekimori-service.exe" \
  "$src/sekimori-service.c" "$work/messages.o" -ladvapi32
mv -f "$work/sekimori-service.exe" "$out/sekimori-service.exe"
echo "sekimori build: dist/windows/sekimori-service.exe"
# The software capability's process lister (no PowerShell/WMI): installed beside sekimori-agent.exe.
"$cc" -O2 -Wall -Wextra -Wno-missing-field-initializers -Werror -static -s -o "$work/sekimori-proclist.exe" \
  "$root/agent/software/windows/proclist.c" -ladvapi32
mv -f "$work/sekimori-proclist.exe" "$out/sekimori-proclist.exe"
echo "sekimori build: dist/windows/sekimori-proclist.exe"
# The desktop notice helper (agent/notify/windows/notice.c: WTSSendMessageW to the console session).
"$cc" -O2 -Wall -Wextra -Wno-missing-field-initializers -Werror -static -s -o "$work/sekimori-notice.exe" \
  "$root/agent/notify/windows/notice.c" -lwtsapi32
mv -f "$work/sekimori-notice.exe" "$out/sekimori-notice.exe"
echo "sekimori build: dist/windows/sekimori-notice.exe"
# The user pipe's broker (agent/local/windows/pipe-broker.c): names each 申請 caller from its token.
"$cc" -O2 -Wall -Wextra -Wno-missing-field-initializers -Werror -municode -static -s -o "$work/sekimori-pipebroker.exe" \
  "$root/agent/local/windows/pipe-broker.c" -ladvapi32
mv -f "$work/sekimori-pipebroker.exe" "$out/sekimori-pipebroker.exe"
echo "sekimori build: dist/windows/sekimori-pipebroker.exe"
# The posture's local accounts (agent/posture/windows/accounts.c: NetUserEnum) for the MFA enrolment control.
"$cc" -O2 -Wall -Wextra -Wno-missing-field-initializers -Werror -static -s -o "$work/sekimori-accounts.exe" \
  "$root/agent/posture/windows/accounts.c" -lnetapi32
mv -f "$work/sekimori-accounts.exe" "$out/sekimori-accounts.exe"
echo "sekimori build: dist/windows/sekimori-accounts.exe"
