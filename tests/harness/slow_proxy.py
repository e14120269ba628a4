#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that forwards to 127.0.0.1:TARGET and slows answers down to
RATE bytes per second, so tests can interrupt a download half way.

Usage: slow_proxy.py PORTFILE TARGET_PORT RATE
Writes its port to PORTFILE; exits on its own after 300 seconds.
"""
import socket
import sys
import threading
import time


def pump(src, dst, rate):
    chunk = 16384
    try:
        while True:
            data = src.recv(chunk)
            if not data:
                break
            dst.sendall(data)
            if rate:
                time.sleep(len(data) / rate)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client, target, rate):
    try:
        upstream = socket.create_connection(("127.0.0.1", target))
    except OSError:
        # The target is down (a test killed it): refuse this client, as the target would,
        # and keep serving for when it is back.
        client.close()
        return
    threading.Thread(target=pump, args=(client, upstream, 0), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client, rate), daemon=True).start()


def main():
    portfile, target, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(listener.getsockname()[1]))
    import os
    os.rename(portfile + ".tmp", portfile)
    deadline = time.time() + 300
    listener.settimeout(1)
    while time.time() < deadline:
        try:
            client, _ = listener.accept()
        except socket.timeout:
            continue
        serve(client, target, rate)


if __name__ == "__main__":
    main()
