#!/usr/bin/env bash
# dist/sea/sekimori-agent.msi from dist/sea/sekimori-agent.exe and sekimori-service.exe (called by
# installers/windows/package.sh). wixl lacks three WiX features we need; they are set afterwards in
# the MSI's own tables with msibuild (msitools), and checked here:
#   Component.Attributes |= 16 (msidbComponentAttributesPermanent) for the device policy components
#                        (generated from the agent's strictDefaultPlan() by policy-wxi.mjs),
#   Component.Condition  TOKEN / CP_HOSTNAME for the enrolment and Credential Provider settings
#                        (the latter Permanent as well),
#   SecureCustomProperties += the command-line properties (Property/@Secure).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
work=$(cd "${1:-$(mktemp -d)}" && pwd) # absolute: wixl runs in another folder
sea=$root/dist/sea
for f in sekimori-agent.exe sekimori-service.exe sekimori-proclist.exe sekimori-notice.exe sekimori-pipebroker.exe sekimori-accounts.exe; do [[ -f $sea/$f ]] || { echo "build-msi: missing $sea/$f" >&2; exit 1; }; done
# MSI versions are numeric major.minor.build: the package version without any pre-release tag.
version=$(sed -n 's/^ *"version": *"\([0-9]*\.[0-9]*\.[0-9]*\).*/\1/p' "$root/package.json" | head -1)
msi=$work/sekimori-agent.msi
[[ -f $root/dist/agent/usb/windows/plan.js ]] || { echo "build-msi: run 'npm run build' first (the policy comes from dist/agent/usb/windows/plan.js)" >&2; exit 1; }
node "$root/installers/windows/msi/policy-wxi.mjs" "$work"
rm -f "$msi"
# wixl takes File/@Source relative to the folder it runs in.
(cd "$sea" && wixl -a x64 -D Version="$version" -I "$work" -o "$msi" "$root/installers/windows/msi/sekimori-agent.wxs")
[[ -s $msi ]] || { echo "build-msi: wixl wrote no MSI" >&2; exit 1; }
mapfile -t policy < "$work/policy-components.txt"
for id in "${policy[@]}"; do
  msibuild "$msi" -q "UPDATE \`Component\` SET \`Attributes\` = 272 WHERE \`Component\` = '$id'"
done
msibuild "$msi" -q "UPDATE \`Component\` SET \`Condition\` = 'TOKEN' WHERE \`Component\` = 'Enrollment'"
# Permanent too (256 + 16 + 4 = registry key path): an upgrade without CP_* must not drop the
# terminal's logon settings (the Credential Provider is a product of its own and stays installed).
msibuild "$msi" -q "UPDATE \`Component\` SET \`Condition\` = 'CP_HOSTNAME', \`Attributes\` = 276 WHERE \`Component\` = 'CredentialProvider'"
secure=$(msiinfo export "$msi" Property | awk -F'\t' '$1 == "SecureCustomProperties" {print $2}')
msibuild "$msi" -q "UPDATE \`Property\` SET \`Value\` = '${secure:+$secure;}CONSOLE;TOKEN;CA_FINGERPRINT;CP_HOSTNAME;CP_PORT;CP_REALM;CP_EXCLUDED_ACCOUNT' WHERE \`Property\` = 'SecureCustomProperties'"
# Fail the build, not an install, if the edits did not land (256 = 64-bit, 16 = permanent).
want=$(( ${#policy[@]} + 3 ))
got=$(msiinfo export "$msi" Component | awk -F'\t' '$1 ~ /^Policy[0-9]+$/ && $4 == 272 {n++} $1 == "Enrollment" && $5 == "TOKEN" {n++} $1 == "CredentialProvider" && $4 == 276 && $5 == "CP_HOSTNAME" {n++} END {print n+0}')
msiinfo export "$msi" Property | grep -q 'SecureCustomProperties.*CA_FINGERPRINT' && got=$((got + 1))
[[ $got == "$want" ]] || { echo "build-msi: table edits missing ($got of $want)" >&2; msiinfo export "$msi" Component >&2; exit 1; }
[[ $msi -ef $sea/sekimori-agent.msi ]] || mv -f "$msi" "$sea/sekimori-agent.msi"
echo "package: $sea/sekimori-agent.msi ($(du -m "$sea/sekimori-agent.msi" | cut -f1) MB, version $version)"
