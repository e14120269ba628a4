#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 in front of 127.0.0.1:TARGET that misbehaves first: the first
FAIL503 connections get an HTTP 503 answer, the next RESETS connections are reset at once,
and every later connection is forwarded. Tests use it to see retries with backoff work.

Usage: flaky_proxy.py PORTFILE TARGET FAIL503 RESETS   (exits by itself after 120 s)
"""
import os
import socket
import struct
import sys
import threading
import time

portfile, target, fail503, resets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(64)
with open(portfile + ".tmp", "w") as f:
    f.write(str(listener.getsockname()[1]))
os.rename(portfile + ".tmp", portfile)
listener.settimeout(1)
deadline = time.time() + 120
count = 0
while time.time() < deadline:
    try:
        client, _ = listener.accept()
    except socket.timeout:
        continue
    count += 1
    if count <= fail503:
        client.recv(65536)
        client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        client.close()
    elif count <= fail503 + resets:
        # SO_LINGER with a zero timeout makes close() send a reset.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
    else:
        upstream = socket.create_connection(("127.0.0.1", target))
        threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
