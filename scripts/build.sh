#!/usr/bin/env bash
# Builds everything the product runs: TypeScript → dist/, and the native pieces (PAM module)
# when their toolchain is present. Run through scripts/n24 (npm run build does that).
set -euo pipefail
cd "$(dirname "$0")/.."
# No `rm -rf dist`: tsc overwrites, and a fresh clone starts without dist anyway.
tsc -p tsconfig.json
# Static console assets (web UI) are copied as they are.
if [[ -d console/web/static ]]; then mkdir -p dist/console/web && cp -r console/web/static dist/console/web/; fi
for extra in installers/*/build.sh; do
  [[ -f "$extra" ]] && bash "$extra"
done
exit 0
