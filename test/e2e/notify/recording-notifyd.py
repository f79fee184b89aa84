#!/usr/bin/python3
"""A test-side notification server: owns org.freedesktop.Notifications on the session bus given in
DBUS_SESSION_BUS_ADDRESS and appends one JSON line per Notify call to the file in argv[1].
Prints 'ready' once the name is owned. Exits by itself after argv[2] seconds (bounded)."""
import json
import sys

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

OUT = sys.argv[1]
LIFETIME_S = int(sys.argv[2]) if len(sys.argv) > 2 else 300


class Server(dbus.service.Object):
    def __init__(self, bus):
        self.next_id = 0
        name = dbus.service.BusName('org.freedesktop.Notifications', bus, do_not_queue=True)
        super().__init__(name, '/org/freedesktop/Notifications')

    @dbus.service.method('org.freedesktop.Notifications', in_signature='susssasa{sv}i', out_signature='u',
                         sender_keyword='sender', connection_keyword='conn')
    def Notify(self, app, replaces, icon, summary, body, actions, hints, timeout, sender=None, conn=None):
        self.next_id += 1
        uid = conn.get_unix_user(sender)
        hint = {str(k): int(v) if isinstance(v, (dbus.Byte, int)) else str(v) for k, v in hints.items()}
        with open(OUT, 'a', encoding='utf-8') as f:
            f.write(json.dumps({'app': str(app), 'replaces': int(replaces), 'icon': str(icon), 'summary': str(summary),
                                'body': str(body), 'actions': [str(a) for a in actions], 'hints': hint,
                                'timeout': int(timeout), 'uid': int(uid)}, ensure_ascii=False) + '\n')
        return dbus.UInt32(self.next_id)

    @dbus.service.method('org.freedesktop.Notifications', in_signature='', out_signature='as')
    def GetCapabilities(self):
        return ['body', 'body-markup']

    @dbus.service.method('org.freedesktop.Notifications', in_signature='', out_signature='ssss')
    def GetServerInformation(self):
        return ('sekimori-test', 'sekimori', '1', '1.2')


DBusGMainLoop(set_as_default=True)
bus = dbus.SessionBus()
server = Server(bus)
loop = GLib.MainLoop()
GLib.timeout_add_seconds(LIFETIME_S, loop.quit)
print('ready', flush=True)
loop.run()
