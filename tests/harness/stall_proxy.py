#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 in front of 127.0.0.1:TARGET that stops sending mid-download:
on each connection, once it has passed AFTER bytes from the registry to the client, it
forwards nothing more but keeps the connection open (a registry that hangs mid-layer).
Small answers (the API probe, tokens, manifests) pass whole.

Usage: stall_proxy.py PORTFILE TARGET AFTER   (exits by itself after 120 s)
"""
import os
import socket
import sys
import threading
import time

portfile, target, after = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def to_client(src, dst):
    sent = 0
    try:
        while sent < after:
            data = src.recv(min(16384, after - sent))
            if not data:
                break
            dst.sendall(data)
            sent += len(data)
        while True:  # hold the connection, send nothing
            time.sleep(1)
    except OSError:
        pass


def to_server(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass


listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 0))
listener.listen(64)
with open(portfile + ".tmp", "w") as f:
    f.write(str(listener.getsockname()[1]))
os.rename(portfile + ".tmp", portfile)
listener.settimeout(1)
deadline = time.time() + 120
while time.time() < deadline:
    try:
        client, _ = listener.accept()
    except socket.timeout:
        continue
    server = socket.create_connection(("127.0.0.1", target))
    threading.Thread(target=to_client, args=(server, client), daemon=True).start()
    threading.Thread(target=to_server, args=(client, server), daemon=True).start()
