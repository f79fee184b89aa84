#!/usr/bin/env bash
# Builds the terminal agent's Debian package: dist/sekimori-agent_VERSION_amd64.deb, from the
# single executable (npm run package), the PAM module (npm run build) and the installer pieces.
# IT staff install it on each terminal; with /etc/sekimori/enroll.env preseeded (CONSOLE,
# TOKEN — a multi-use token from `enroll-token --uses N` — and CA_FINGERPRINT) the package enrolls
# and starts the agent by itself. PAM stacks are never edited automatically (see postinst).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/installers/linux
version=$(node -p "require('$root/package.json').version")
agent_bin=$root/dist/sea/sekimori-agent
pam_so=$root/dist/pam/pam_sekimori.so
peercred=$root/dist/pam/sekimori-peercred
exec_guard=$root/dist/exec-guard/sekimori-exec-guard
file_log=$root/dist/file-log/sekimori-file-log
for f in "$agent_bin" "$pam_so" "$peercred" "$exec_guard" "$file_log"; do
  [[ -f $f ]] || { echo "build-deb: missing $f (run npm run build && npm run package)" >&2; exit 1; }
done
command -v dpkg-deb >/dev/null || { echo "build-deb: dpkg-deb missing (apt-get install dpkg-dev)" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage" # mktemp made it 0700; it becomes the package's "/"
install -D -m 0755 "$agent_bin" "$stage/opt/sekimori/bin/sekimori-agent"
install -d -m 0755 "$stage/usr/bin" && ln -s /opt/sekimori/bin/sekimori-agent "$stage/usr/bin/sekimori-agent"
install -D -m 0644 "$pam_so" "$stage/lib/x86_64-linux-gnu/security/pam_sekimori.so"
install -D -m 0644 "$here/pam/sekimori-auth" "$stage/etc/pam.d/sekimori-auth"
install -D -m 0644 "$here/modprobe.d/sekimori-usb.conf" "$stage/etc/modprobe.d/sekimori-usb.conf"
install -D -m 0644 "$here/udev/70-sekimori-usb-readonly.rules" "$stage/lib/udev/rules.d/70-sekimori-usb-readonly.rules"
install -D -m 0755 "$here/udev/usb-readonly" "$stage/usr/lib/sekimori/usb-readonly"
# Run by the agent (root) to learn who is on its unlock socket: root's, not writable by others.
install -D -m 0755 "$peercred" "$stage/usr/lib/sekimori/sekimori-peercred"
# The pre-exec helper (fanotify), started by the agent in enforce mode: root's, not writable by others.
install -D -m 0755 "$exec_guard" "$stage/usr/lib/sekimori/sekimori-exec-guard"
# The 持ち出しログ helper (fanotify), started by the agent while a usable medium is present.
install -D -m 0755 "$file_log" "$stage/usr/lib/sekimori/sekimori-file-log"
install -D -m 0644 "$here/systemd/sekimori-agent.service" "$stage/lib/systemd/system/sekimori-agent.service"
install -d -m 0700 "$stage/var/lib/sekimori-agent"
install -d -m 0755 "$stage/DEBIAN"
sed "s/@VERSION@/$version/" "$here/deb/control" > "$stage/DEBIAN/control"
for s in postinst prerm; do install -m 0755 "$here/deb/$s" "$stage/DEBIAN/$s"; done
echo "/etc/pam.d/sekimori-auth" > "$stage/DEBIAN/conffiles"
echo "/etc/modprobe.d/sekimori-usb.conf" >> "$stage/DEBIAN/conffiles"
out=$root/dist/sekimori-agent_${version}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "build-deb: $out ($(du -h "$out" | cut -f1))"
