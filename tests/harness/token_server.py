#!/usr/bin/env python3
"""A Distribution token server for the tests (registry.sh's `token` mode). Stdlib only.

Usage: token_server.py PORTFILE KEY.pem CERT.pem ISSUER SERVICE

Listens on 127.0.0.1 on a free port and writes that port to PORTFILE (atomically). Answers
  GET  /token?service=S&scope=repository:NAME:ACTIONS[&scope=...]   (Docker's token flow)
  POST /token  with a form body: grant_type=password&username=U&password=P&scope=...
                 (the OAuth2 form; refresh tokens are not supported)
  GET  /health  200, for the start-up check.

Policy (decided per requested scope):
  - HTTP basic credentials tester:secret: pull and push on every repository;
  - no credentials: pull on repositories whose name starts with `public/`, nothing elsewhere;
  - wrong credentials: 401, no token;
  - anything else (other scope types, other actions, other auth schemes): a token whose
    access list is empty for it, so the registry answers 401 (insufficient_scope) itself.

Tokens are RS256 JWTs signed by `openssl dgst -sha256 -sign KEY`; their header carries CERT
(self-signed, and the registry's `rootcertbundle`) in `x5c`. The answer has `token`,
`access_token` (the same), `expires_in` and `issued_at`. Requests are logged on stderr.
Exits by itself after HARNESS_LIFETIME seconds (default 7200; 0 = never).
"""
import base64
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

USERS = {"tester": "secret"}
TTL = 300


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_cert_b64(path):
    """The certificate's DER, in standard base64 (what x5c wants): the PEM body."""
    lines = open(path).read().splitlines()
    try:
        start = lines.index("-----BEGIN CERTIFICATE-----")
        end = lines.index("-----END CERTIFICATE-----")
    except ValueError:
        sys.exit("token_server.py: no certificate in " + path)
    return "".join(lines[start + 1:end])


def grant(user, scopes):
    access = []
    for scope in scopes:
        parts = scope.split(":")
        # repository:NAME:ACTIONS; NAME may itself hold a ':' only with a port, which
        # repository names never do, so three parts it is (plus repository(plugin) types).
        if len(parts) != 3 or not parts[0].startswith("repository"):
            continue
        kind, name, wanted = parts[0], parts[1], [a for a in parts[2].split(",") if a]
        if user is not None:
            allowed = [a for a in wanted if a in ("pull", "push")]
        elif name.startswith("public/"):
            allowed = [a for a in wanted if a == "pull"]
        else:
            allowed = []
        access.append({"type": kind, "name": name, "actions": allowed})
    return access


class TokenServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, key, cert, issuer, service):
        super().__init__(("127.0.0.1", 0), Handler)
        self.key, self.cert_b64, self.issuer, self.service = key, load_cert_b64(cert), issuer, service

    def make_token(self, user, service, scopes):
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.cert_b64]}
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": service or self.service,
            "exp": now + TTL,
            "nbf": now - 60,
            "iat": now,
            "jti": str(uuid.uuid4()),
            "access": grant(user, scopes),
        }
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key],
                             input=signing_input.encode(), capture_output=True, check=True).stdout
        return signing_input + "." + b64url(sig), claims


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("token_server: %s %s\n" % (self.address_string(), fmt % args))

    def reply(self, code, body, extra=()):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def deny(self):
        self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]},
                   [("WWW-Authenticate", 'Basic realm="rkt-test-token"')])

    def basic_user(self):
        """(ok, user): user None for anonymous; ok False for bad credentials."""
        auth = self.headers.get("Authorization", "")
        if not auth.lower().startswith("basic "):
            return True, None  # anonymous, or a scheme we ignore
        try:
            name, sep, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False, None
        if not sep or USERS.get(name) != password:
            return False, None
        return True, name

    def issue(self, user, service, scopes):
        tok, claims = self.server.make_token(user, service, scopes)
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims["iat"]))
        sys.stderr.write("token_server: granted %s to %r\n" % (json.dumps(claims["access"]), user))
        self.reply(200, {"token": tok, "access_token": tok, "expires_in": TTL, "issued_at": issued})

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/health":
            return self.reply(200, {})
        if url.path != "/token":
            return self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
        ok, user = self.basic_user()
        if not ok:
            return self.deny()
        query = parse_qs(url.query)
        scopes = [s for q in query.get("scope", []) for s in q.split(" ") if s]
        self.issue(user, query.get("service", [""])[0], scopes)

    def do_POST(self):
        url = urlparse(self.path)
        if url.path != "/token":
            return self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode(errors="replace"))
        scopes = [s for q in form.get("scope", []) for s in q.split(" ") if s]
        service = form.get("service", [""])[0]
        grant_type = form.get("grant_type", [""])[0]
        if grant_type != "password":
            return self.reply(400, {"error": "unsupported_grant_type"})
        name, password = form.get("username", [""])[0], form.get("password", [""])[0]
        if USERS.get(name) != password:
            return self.deny()
        self.issue(name, service, scopes)


def main():
    if len(sys.argv) != 6:
        sys.exit("usage: token_server.py PORTFILE KEY.pem CERT.pem ISSUER SERVICE")
    portfile, key, cert, issuer, service = sys.argv[1:]
    server = TokenServer(key, cert, issuer, service)
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, portfile)
    lifetime = int(os.environ.get("HARNESS_LIFETIME", "7200"))
    if lifetime > 0:
        threading.Timer(lifetime, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
