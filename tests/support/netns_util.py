"""Network namespace helpers shared by the network tests and the network benchmark."""

import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def in_netns(path, fn):
    """Runs fn on a thread that has joined the network namespace at `path`: sockets it creates
    stay in that namespace."""
    result = {}

    def run():
        fd = os.open(path, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns " + path)
            result["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            result["error"] = e
        finally:
            os.close(fd)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


def accept_each(sock, handle):
    """Accepts on `sock` on a background thread until it closes, handling each connection on a
    thread of its own (which shares the network namespace of the caller's thread)."""

    def loop():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def relay(sock, target):
    """Accepts on `sock` (in another namespace) and connects each connection to `target` from
    this thread's namespace (the machine's): the registry without a route between the two."""

    def pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            try:
                b.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def connect(conn):
        try:
            up = socket.create_connection(target, timeout=10)
            up.settimeout(None)
        except OSError:
            conn.close()
            return
        threading.Thread(target=pump, args=(conn, up), daemon=True).start()
        pump(up, conn)

    accept_each(sock, connect)
