#!/usr/bin/env python3
"""An HTTPS server for appc discovery tests: ACIs, signatures, keys and discovery pages.

Usage: discovery_server.py PORTFILE ROUTES.json IP CERT KEY [PORT]

Listens on IP:PORT (443 by default: discovery URLs carry no port), with CERT and KEY. Each
request is looked up in ROUTES by "HOST/PATH" plus "?QUERY" when there is one, HOST
without a port; a route is {"file": PATH}, {"body": TEXT}, {"redirect": URL} or
{"status": CODE}, and may say {"authorization": VALUE}: then a request without exactly that
Authorization header gets a 401. Anything else is a 404. Every request is logged to PORTFILE.log as
"HOST/PATH?QUERY". Writes the port to PORTFILE once listening. ROUTES is re-read on every
request, so a test may change it while the server runs.
"""
import http.server
import json
import ssl
import sys

portfile, routes_file, ip, cert, key = sys.argv[1:6]
port = int(sys.argv[6]) if len(sys.argv) > 6 else 443


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0]
        path, _, query = self.path.partition("?")
        wanted = host + path + ("?" + query if query else "")
        with open(portfile + ".log", "a") as log:
            log.write(wanted + "\n")
        with open(routes_file) as f:
            route = json.load(f).get(wanted)
        if route is None:
            return self.answer(404, b"not found\n")
        if "authorization" in route and self.headers.get("Authorization") != route["authorization"]:
            return self.answer(401, b"unauthorized\n")
        if "redirect" in route:
            self.send_response(302)
            self.send_header("Location", route["redirect"])
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if "status" in route:
            return self.answer(route["status"], b"status\n")
        body = route["body"].encode() if "body" in route else open(route["file"], "rb").read()
        self.answer(200, body)

    def answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer((ip, port), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
with open(portfile + ".tmp", "w") as f:
    f.write(f"{server.server_address[1]}\n")
import os
os.rename(portfile + ".tmp", portfile)
server.serve_forever()
