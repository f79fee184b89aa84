#!/usr/bin/env bash
# dist/sea/sekimori-agent.msi from dist/sea/sekimori-agent.exe and sekimori-service.exe (called by
# installers/windows/package.sh). wixl lacks three WiX features we need; they are set afterwards in
# the MSI's own tables with msibuild (msitools), and checked here:
#   Component.Attributes |= 16 (msidbComponentAttributesPermanent) for the four device policies,
#   Component.Condition  TOKEN / CP_HOSTNAME for the enrolment and Credential Provider settings
#                        (the latter Permanent as well),
#   SecureCustomProperties += the command-line properties (Property/@Secure).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
work=${1:-$(mktemp -d)}
sea=$root/dist/sea
for f in sekimori-agent.exe sekimori-service.exe; do [[ -f $sea/$f ]] || { echo "build-msi: missing $sea/$f" >&2; exit 1; }; done
# MSI versions are numeric major.minor.build: the package version without any pre-release tag.
version=$(sed -n 's/^ *"version": *"\([0-9]*\.[0-9]*\.[0-9]*\).*/\1/p' "$root/package.json" | head -1)
msi=$work/sekimori-agent.msi
# wixl takes File/@Source relative to the folder it runs in.
(cd "$sea" && wixl -a x64 -D Version="$version" -o "$msi" "$root/installers/windows/msi/sekimori-agent.wxs")
msibuild "$msi" -q "UPDATE \`Component\` SET \`Attributes\` = 272 WHERE \`Component\` = 'PolicyRemovableDisks' OR \`Component\` = 'PolicyCdDvd' OR \`Component\` = 'PolicyWpd1' OR \`Component\` = 'PolicyWpd2'"
msibuild "$msi" -q "UPDATE \`Component\` SET \`Condition\` = 'TOKEN' WHERE \`Component\` = 'Enrollment'"
# Permanent too (256 + 16 + 4 = registry key path): an upgrade without CP_* must not drop the
# terminal's logon settings (the Credential Provider is a product of its own and stays installed).
msibuild "$msi" -q "UPDATE \`Component\` SET \`Condition\` = 'CP_HOSTNAME', \`Attributes\` = 276 WHERE \`Component\` = 'CredentialProvider'"
secure=$(msiinfo export "$msi" Property | awk -F'\t' '$1 == "SecureCustomProperties" {print $2}')
msibuild "$msi" -q "UPDATE \`Property\` SET \`Value\` = '${secure:+$secure;}CONSOLE;TOKEN;CA_FINGERPRINT;CP_HOSTNAME;CP_PORT;CP_REALM;CP_EXCLUDED_ACCOUNT' WHERE \`Property\` = 'SecureCustomProperties'"
# Fail the build, not an install, if the edits did not land (256 = 64-bit, 16 = permanent).
got=$(msiinfo export "$msi" Component | awk -F'\t' '$1 ~ /^Policy/ && $4 == 272 {n++} $1 == "Enrollment" && $5 == "TOKEN" {n++} $1 == "CredentialProvider" && $4 == 276 && $5 == "CP_HOSTNAME" {n++} END {print n+0}')
msiinfo export "$msi" Property | grep -q 'SecureCustomProperties.*CA_FINGERPRINT' && got=$((got + 1))
[[ $got == 7 ]] || { echo "build-msi: Component table edits missing ($got of 7)" >&2; msiinfo export "$msi" Component >&2; exit 1; }
mv -f "$msi" "$sea/sekimori-agent.msi"
echo "package: $sea/sekimori-agent.msi ($(du -m "$sea/sekimori-agent.msi" | cut -f1) MB, version $version)"
