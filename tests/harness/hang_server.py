#!/usr/bin/env python3
"""A TCP server on 127.0.0.1 that accepts connections and never answers, to test timeouts.

Usage: hang_server.py PORTFILE   (writes its port there; exits by itself after 120 s)
"""
import os
import socket
import sys
import time

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(64)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(listener.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
held = []
listener.settimeout(1)
deadline = time.time() + 120
while time.time() < deadline:
    try:
        conn, _ = listener.accept()
        held.append(conn)
    except socket.timeout:
        pass
