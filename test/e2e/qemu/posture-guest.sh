#!/bin/sh
# Runs INSIDE the QEMU guest for posture.test.ts (one boot): the posture readers with the installer's
# modprobe.d file in place, after the agent's root-hub hold, and with the file removed.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
S=/run/state
set -a; . $S/env; set +a
exec >$S/guest.log 2>&1
set -x
# The guest root is the host's, read-only: the config folders the test changes are tmpfs.
mount -t tmpfs tmpfs /etc/modprobe.d
mount -t tmpfs tmpfs /etc/udev/rules.d
cp $REPO/installers/linux/modprobe.d/sekimori-usb.conf /etc/modprobe.d/
cp $REPO/installers/linux/udev/70-sekimori-usb-readonly.rules /etc/udev/rules.d/
cat /sys/module/usbcore/parameters/authorized_default > $S/in-effect.txt
$NODE $S/probe.mjs > $S/configured.json
# What the agent does at start: every root hub holds new devices.
for h in /sys/bus/usb/devices/usb*; do echo 0 > $h/authorized_default; done
$NODE $S/probe.mjs > $S/hubs-held.json
rm /etc/modprobe.d/sekimori-usb.conf
$NODE $S/probe.mjs > $S/unconfigured.json
touch $S/done
