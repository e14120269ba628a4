#!/usr/bin/env python3
"""Serves one manifest over HTTP on 127.0.0.1, for the case a real Distribution registry
cannot produce: a manifest over 4 MiB (the registry refuses to store or serve one).

Usage: manifest_server.py PORTFILE SIZE   (a valid OCI manifest padded to SIZE bytes)
Answers GET /v2/ with 200 and every GET of /v2/<repo>/manifests/<ref> with the manifest.
Exits by itself after 120 s.
"""
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

size = int(sys.argv[2])
doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                  "digest": "sha256:" + "0" * 64, "size": 2}, "layers": [], "annotations": {"pad": ""}}
base = len(json.dumps(doc))
doc["annotations"]["pad"] = "x" * max(0, size - base)
BODY = json.dumps(doc).encode()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        body, ctype = b"{}", "application/json"
        if "/manifests/" in self.path:
            body, ctype = BODY, "application/vnd.oci.image.manifest.v1+json"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
threading.Timer(120, server.shutdown).start()
server.serve_forever()
