#!/usr/bin/env python3
"""A Distribution token server for tests (the "token" registry mode).

Usage: token_server.py PORT KEY.pem CERT.pem

Policy: anonymous requests get `pull` on repositories under `public/`; requests with basic
credentials tester:secret get pull and push on every repository; wrong credentials get 401.
Tokens are RS256 JWTs signed with `openssl dgst`, carrying the certificate in `x5c`; the
registry trusts that certificate through its `rootcertbundle`. Exits by itself after an hour.
"""
import base64
import json
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PORT, KEY, CERT = int(sys.argv[1]), sys.argv[2], sys.argv[3]
USERS = {"tester": "secret"}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cert_der():
    pem = open(CERT).read()
    body = "".join(l for l in pem.splitlines() if "CERTIFICATE" not in l)
    return body  # already standard base64 of the DER


def sign(message):
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", KEY], input=message, capture_output=True, check=True
    )
    return out.stdout


def grant(user, scopes):
    access = []
    for scope in scopes:
        parts = scope.split(":")
        if len(parts) != 3 or parts[0] != "repository":
            continue
        name, wanted = parts[1], parts[2].split(",")
        if user is not None:
            allowed = [a for a in wanted if a in ("pull", "push")]
        elif name.startswith("public/"):
            allowed = [a for a in wanted if a == "pull"]
        else:
            allowed = []
        access.append({"type": "repository", "name": name, "actions": allowed})
    return access


def token(user, service, scopes):
    now = int(time.time())
    header = {"typ": "JWT", "alg": "RS256", "x5c": [cert_der()]}
    claims = {
        "iss": "rkt-test-issuer",
        "sub": user or "",
        "aud": service,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "access": grant(user, scopes),
    }
    signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
    return signing_input.decode() + "." + b64url(sign(signing_input))


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("token: " + (fmt % args) + "\n")

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/health":
            return self.reply(200, {})
        if url.path != "/token":
            return self.reply(404, {"error": "not found"})
        query = parse_qs(url.query)
        user = None
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if USERS.get(name) != password:
                return self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
            user = name
        scopes = []
        for s in query.get("scope", []):
            scopes.extend(s.split(" "))
        t = token(user, query.get("service", [""])[0], scopes)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.reply(200, {"token": t, "access_token": t, "expires_in": 300, "issued_at": now})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    threading.Timer(3600, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
