#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""python3-dbus client of io.tokend.Tokend1, as a library (py_call,
py_property) and as a program the tests run under another uid:

  tdbus_client.py ADDRESS METHOD SIGNATURE JSON-ARGS
      one call; prints {"result": …} or {"error": NAME, "message": …}
  tdbus_client.py ADDRESS --watch [--no-subscribe]
      listens for DeviceRevoked and calls Subscribe() (tokend sends the
      signal only to subscribers), prints "ready", then one JSON
      [user, device_id] line per signal until killed; each "ping" line on
      stdin is answered "pong" once everything the bus had queued for this
      connection before it has been printed
  tdbus_client.py ADDRESS --eavesdrop
      asks for every message on the bus (and calls Subscribe() for its own
      copy of DeviceRevoked), prints "ready", then one JSON
      {type, member, args (the strings)} line per message it gets
"""

import json
import sys

import dbus
import dbus.bus

NAME = "io.tokend.Tokend1"
PATH = "/io/tokend/Tokend1"
IFACE = "io.tokend.Tokend1"


class BusError(Exception):
    def __init__(self, name, message):
        super().__init__("%s: %s" % (name, message))
        self.name = name
        self.message = message


def plain(v):
    """python3-dbus values → plain Python."""
    if isinstance(v, dbus.Boolean):
        return bool(v)
    if isinstance(v, (dbus.String, dbus.ObjectPath)):
        return str(v)
    if isinstance(v, (dbus.Int16, dbus.Int32, dbus.Int64, dbus.UInt16, dbus.UInt32, dbus.UInt64, dbus.Byte)):
        return int(v)
    if isinstance(v, dict):
        return {plain(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def py_call(address, method, sig, args):
    """One call; the signature is sent as given (nothing is checked on this
    side, so wrong types reach tokend). One value → that value, none → None."""
    conn = dbus.bus.BusConnection(address)
    try:
        out = conn.call_blocking(NAME, PATH, IFACE, method, sig, tuple(args), timeout=30)
    except dbus.exceptions.DBusException as e:
        raise BusError(e.get_dbus_name(), e.get_dbus_message()) from None
    finally:
        conn.close()
    return plain(out)


def py_property(address, name):
    conn = dbus.bus.BusConnection(address)
    try:
        props = dbus.Interface(conn.get_object(NAME, PATH), "org.freedesktop.DBus.Properties")
        return plain(props.Get(IFACE, name))
    finally:
        conn.close()


def watch(address, subscribe=True):
    from dbus.mainloop.glib import DBusGMainLoop
    from gi.repository import GLib

    DBusGMainLoop(set_as_default=True)
    conn = dbus.bus.BusConnection(address)

    def on_signal(user, device_id):
        print(json.dumps([str(user), str(device_id)]), flush=True)

    def on_stdin(fd, cond):
        line = sys.stdin.readline()
        if not line:
            return False
        # an asynchronous call to the bus daemon: its answer is dispatched
        # after every message the daemon queued for us before it
        conn.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus").GetId(
            dbus_interface="org.freedesktop.DBus", reply_handler=lambda _id: print("pong", flush=True),
            error_handler=lambda e: print("pong-error %s" % e, flush=True))
        return True

    # AddMatch and Subscribe are blocking calls: once they return, signals come
    conn.add_signal_receiver(on_signal, "DeviceRevoked", IFACE, None, PATH)
    if subscribe:
        conn.call_blocking(NAME, PATH, IFACE, "Subscribe", "", [])
    GLib.io_add_watch(sys.stdin, GLib.IO_IN | GLib.IO_HUP, on_stdin)
    print("ready", flush=True)
    GLib.MainLoop().run()


def eavesdrop(address):
    """Ask the bus for every message (eavesdrop=true match rules: the bus
    grants those only to privileged connections, then applies its policy)."""
    from dbus.mainloop.glib import DBusGMainLoop
    from gi.repository import GLib

    DBusGMainLoop(set_as_default=True)
    conn = dbus.bus.BusConnection(address)
    kinds = {1: "method_call", 2: "method_return", 3: "error", 4: "signal"}

    def on_message(c, msg):
        args = [str(a) for a in msg.get_args_list() if isinstance(a, (str, dbus.String))]
        print(json.dumps({"type": kinds.get(msg.get_type()), "member": msg.get_member(), "args": args}),
              flush=True)

    conn.add_message_filter(on_message)
    for t in ("method_call", "method_return", "error", "signal"):
        conn.add_match_string("eavesdrop=true,type='%s'" % t)
    # DeviceRevoked is unicast to subscribers: subscribed (as root, so every
    # revocation), it gets its own copy, which the tests use to sync
    conn.call_blocking(NAME, PATH, IFACE, "Subscribe", "", [])
    print("ready", flush=True)
    GLib.MainLoop().run()


def main(argv):
    if len(argv) == 4 and argv[2:] == ["--watch", "--no-subscribe"]:
        watch(argv[1], subscribe=False)
        return 0
    if len(argv) == 3 and argv[2] in ("--watch", "--eavesdrop"):
        (watch if argv[2] == "--watch" else eavesdrop)(argv[1])
        return 0
    address, method, sig, args = argv[1], argv[2], argv[3], json.loads(argv[4])
    try:
        out = {"result": py_call(address, method, sig, args)}
    except BusError as e:
        out = {"error": e.name, "message": e.message}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
