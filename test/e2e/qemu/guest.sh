#!/bin/sh
# Runs INSIDE the QEMU guest, chrooted into the host's root (read-only 9p), as PID 1's child.
# /run/state is a writable 9p share of a host temp dir: env in, logs and results out, and a
# command queue (cmd/N.sh → cmd/N.out, cmd/N.rc) through which the host test drives the guest.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
S=/run/state
set -a; . $S/env; set +a
exec >$S/guest.log 2>&1
set -x

# Network to the console: QEMU user net, restrict=on, guestfwd 10.0.2.100:8443 → host loopback.
IF=$(ls /sys/class/net | grep -v '^lo$' | head -1)
ip link set lo up
ip link set "$IF" up
ip addr add 10.0.2.15/24 dev "$IF"
echo "$IF" > $S/netif

# The installer's udev rule, with its helper path pointing into the repository (the guest root is read-only).
mount -t tmpfs tmpfs /etc/udev/rules.d
sed "s#/usr/lib/sekimori/usb-readonly#$REPO/installers/linux/udev/usb-readonly#" $REPO/installers/linux/udev/70-sekimori-usb-readonly.rules > /etc/udev/rules.d/70-sekimori-usb-readonly.rules
/lib/systemd/systemd-udevd --daemon
udevadm monitor --kernel --subsystem-match=usb --subsystem-match=block > $S/uevents.log 2>&1 &

# Wait (bounded) for the stick present at boot to have its disk, as on a terminal without the agent.
n=0; while [ $n -lt 200 ] && ! ls /sys/block | grep -q '^sd'; do sleep 0.1; n=$((n+1)); done
ls /sys/block > $S/blocks-before-agent.txt
cat /sys/bus/usb/devices/*/serial > $S/serials-before-agent.txt 2>/dev/null

# The watcher is the test's instrument, not the terminal's workload: lowest priority, so it does not
# take the single vCPU from the agent it measures (every driver binding is also in the uevent log).
nice -n 19 $NODE $REPO/test/e2e/qemu/guest-watch.mjs $S/watch.jsonl $S/stop-watch 5 &
$NODE $REPO/bin/sekimori-agent.js enroll --console "$CONSOLE_URL" --token "$TOKEN" --ca-fingerprint "$FP" --state /tmp/agent --json > $S/enroll.json 2>$S/enroll.err
echo $? > $S/enroll.rc

i=1; n=0
while [ ! -e $S/quit ] && [ $n -lt 12000 ]; do
  if [ -e $S/cmd/$i.sh ]; then
    sh $S/cmd/$i.sh > $S/cmd/$i.out 2>&1
    echo $? > $S/cmd/$i.rc.tmp && mv $S/cmd/$i.rc.tmp $S/cmd/$i.rc
    i=$((i+1))
  else
    sleep 0.1; n=$((n+1))
  fi
done
touch $S/stop-watch
sleep 0.3
dmesg > $S/dmesg.txt
cp -r /tmp/agent $S/agent-state 2>/dev/null
