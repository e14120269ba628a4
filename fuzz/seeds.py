#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into corpus/TARGET/ (committed; rerun only to
change the seeds). Seeds are small, valid or near-valid inputs of each format, so that the
fuzzer starts from inputs that reach deep into the parsers; manifests come from the OCI layout
that tests/harness/fixtures.sh builds (target/test-fixtures/layout), tar layers from
tests/harness/evil_tar.py. Usage: fuzz/seeds.py [FIXTURE_LAYOUT]"""
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def mp(v):
    """A minimal msgpack encoder (Nomad's cty payloads: maps, arrays, strings, numbers)."""
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, bytes):  # an extension: cty's unknown value
        return b"\xd4\x00" + v[:1]
    if isinstance(v, str):
        b = v.encode()
        return b"\xdb" + struct.pack(">I", len(b)) + b
    if isinstance(v, list):
        return b"\xdd" + struct.pack(">I", len(v)) + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        return b"\xdf" + struct.pack(">I", len(v)) + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


def cty():
    task = {
        "image": "docker://127.0.0.1:5000/busybox:latest", "command": "/bin/sh",
        "args": ["-c", "sleep 1"], "trust_prefix": None, "insecure_options": ["image", "http"],
        "dns_servers": ["127.0.0.1"], "dns_search_domains": ["example"], "net": ["default"],
        "port_map": [{"http": "80-tcp"}], "debug": True, "no_overlay": False,
        "volumes": ["/tmp:/tmp"], "group": "nogroup",
    }
    put("cty_msgpack", "task", mp(task))
    put("cty_msgpack", "task-numbers", mp({"image": "a", "debug": "true", "port_map": [{"a": 1}]}))
    put("cty_msgpack", "task-unknown", mp({"image": b"\x00", "args": ["x", b"\x00"]}))
    put("cty_msgpack", "task-dynamic", mp({"image": [b'"string"'.decode(), "busybox"]}))
    put("cty_msgpack", "plugin", mp({"volumes_enabled": True, "gc": [{"image": True, "image_delay": "3m"}]}))
    put("cty_msgpack", "plugin-float", mp({"volumes_enabled": None, "gc": [{"image": False, "image_delay": 1.5}]}))


def image_config():
    cfg = {
        "architecture": "amd64", "os": "linux", "author": "fuzz", "created": "2001-02-03T00:00:00Z",
        "config": {"User": "1000:1000", "Env": ["PATH=/bin", "A=b=c"], "Entrypoint": ["/bin/sh"],
                   "Cmd": ["-c", "echo"], "WorkingDir": "/srv", "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                   "Volumes": {"/data": {}, "/var/log/x": {}}, "Labels": {"a": "b"}},
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    put("image_config", "full", json.dumps(cfg))
    put("image_config", "minimal", json.dumps({"architecture": "arm", "variant": "v7", "os": "linux"}))
    appc = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "registry.test/busybox",
            "labels": [{"name": "arch", "value": "amd64"}, {"name": "os", "value": "linux"},
                       {"name": "version", "value": "latest"}],
            "app": {"exec": ["/bin/sh"], "user": "0", "group": "0", "workingDirectory": "/",
                    "environment": [{"name": "PATH", "value": "/bin"}],
                    "mountPoints": [{"name": "data", "path": "/data", "readOnly": False}],
                    "ports": [{"name": "80-tcp", "protocol": "tcp", "port": 80, "count": 1,
                               "socketActivated": False}]},
            "annotations": [{"name": "appc.io/docker/originalname", "value": "busybox"}]}
    put("image_config", "appc-manifest", json.dumps(appc))
    put("image_config", "odd-user", json.dumps({"architecture": "amd64", "os": "linux",
                                                "config": {"User": "nobody", "ExposedPorts": {"x/sctp": {}}}}))


def pod_manifest():
    m = {
        "acVersion": "0.8.11", "acKind": "PodManifest",
        "apps": [{"name": "busybox", "image": {"name": "registry.test/busybox", "id": "sha512-" + "0" * 64,
                                               "labels": [{"name": "os", "value": "linux"}]},
                  "app": {"exec": ["/bin/sh"], "user": "0", "group": "0",
                          "ports": [{"name": "http", "protocol": "tcp", "port": 80}]},
                  "mounts": [{"volume": "data", "path": "/data"}]}],
        "volumes": [{"name": "data", "kind": "host", "source": "/tmp", "readOnly": True}],
        "ports": [{"name": "http", "hostPort": 8080}],
    }
    put("pod_manifest", "pod", json.dumps(m))


def registry_manifest(layout):
    if not layout or not os.path.isdir(layout):
        return
    with open(os.path.join(layout, "index.json"), "rb") as f:
        index = f.read()
    put("registry_manifest", "oci-index", b"\x03" + index)
    seen = 0
    for desc in json.loads(index)["manifests"]:
        path = os.path.join(layout, "blobs", *desc["digest"].split(":"))
        with open(path, "rb") as f:
            body = f.read()
        ct = 3 if "index" in desc["mediaType"] else 2
        put("registry_manifest", "oci-" + desc["annotations"]["org.opencontainers.image.ref.name"],
            bytes([ct]) + body)
        seen += 1
        if seen >= 6:
            break
    docker = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
              "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                         "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest()},
              "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1,
                          "digest": "sha256:" + "a" * 64}]}
    put("registry_manifest", "docker-v2", b"\x00" + json.dumps(docker).encode())
    lst = {"schemaVersion": 2, "manifests": [{"digest": "sha256:" + "b" * 64,
                                              "platform": {"os": "linux", "architecture": "amd64"}}]}
    put("registry_manifest", "list-no-type", b"\x01" + json.dumps(lst).encode())
    put("registry_manifest", "schema1", b"\x00" + json.dumps({"schemaVersion": 1, "name": "x"}).encode())


def registry_auth():
    put("registry_auth", "bearer", b"\x00" + b'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a,b:pull"')
    put("registry_auth", "bearer-unquoted", b"\x00" + b"Bearer realm=http://127.0.0.1:1/t, service=reg")
    put("registry_auth", "basic", b'\x00Basic realm="x"')
    put("registry_auth", "token", b'\x01{"token":"abc.def","expires_in":300}')
    put("registry_auth", "access-token", b'\x01{"access_token":"abc"}')
    put("registry_auth", "token-newline", b'\x01{"token":"a\\nb"}')


def aci():
    page = (b'<!DOCTYPE html><html><head>'
            b'<meta name="ac-discovery" content="example.com https://example.com/{name}-{version}-{os}-{arch}.{ext}">'
            b'<meta name="ac-discovery-pubkeys" content="example.com https://example.com/pubkeys.gpg">'
            b'</head></html>')
    put("aci_discovery", "page", b"\x00" + page)
    put("aci_discovery", "page-unclosed", b"\x00<meta name=ac-discovery content='x.com/a https://x.com/{name}.{ext}'")
    put("aci_discovery", "name", b"\x01coreos.com/etcd:v2.0.4")
    put("aci_discovery", "name-labels", b"\x01example.com/app,version=1.0,os=linux,channel=beta")
    manifest = (b'{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/app",'
                b'"labels":[{"name":"version","value":"1"},{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}],'
                b'"app":{"exec":["/bin/sh"],"user":"0","group":"0","ports":[{"name":"www","protocol":"tcp","port":80}],'
                b'"mountPoints":[{"name":"data","path":"/data"}]},'
                b'"dependencies":[{"imageName":"example.com/base","imageID":"sha512-00"}],"pathWhitelist":["/bin/sh"]}')
    put("aci_manifest", "manifest", b"\x00" + manifest)
    key = os.path.join(REPO, "target/test-fixtures-aci/keys/signer.asc")
    if os.path.exists(key):
        put("aci_manifest", "key", b"\x01" + open(key, "rb").read())
    sig = os.path.join(REPO, "target/test-fixtures-aci/hello.aci.asc")
    if os.path.exists(sig):
        put("aci_manifest", "signature", b"\x01" + open(sig, "rb").read())


def config_files():
    put("auth_d", "docker-auth", json.dumps({"rktKind": "dockerAuth", "rktVersion": "v1",
                                             "registries": ["quay.io", "127.0.0.1:5000"],
                                             "credentials": {"user": "u", "password": "p"}}))
    put("auth_d", "basic", json.dumps({"rktKind": "auth", "rktVersion": "v1", "domains": ["example.com"],
                                       "type": "basic", "credentials": {"user": "u", "password": "p"}}))
    put("auth_d", "oauth", json.dumps({"rktKind": "auth", "rktVersion": "v1", "domains": ["example.com"],
                                       "type": "oauth", "credentials": {"token": "t"}}))
    put("net_d", "ptp", json.dumps({"cniVersion": "0.4.0", "name": "mynet", "type": "ptp", "ipMasq": True,
                                    "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}}))
    put("net_d", "bridge", json.dumps({"cniVersion": "1.0.0", "name": "br", "type": "bridge",
                                       "bridge": "rkt0", "isGateway": True}))
    put("registries_d", "mirrors", json.dumps({
        "rktKind": "registries", "rktVersion": "v1", "defaultRegistry": "registry.internal:5000",
        "registries": {"docker.io": {"mirrors": [{"url": "https://mirror.internal"},
                                                 {"url": "http://10.0.0.5:5000"},
                                                 {"url": "https://harbor.internal/dockerhub", "skipTLSVerify": True}],
                                     "mirrorsOnly": False}}}, indent=1))
    put("registries_d", "default-only", '{"rktKind":"registries","rktVersion":"v1","defaultRegistry":"[::1]:5000"}')


def rkt_args():
    samples = {
        "run": ["--net=default", "--port=http:127.0.0.1:8080", "docker://busybox", "--exec=/bin/sh",
                "--", "-c", "true", "---", "redis:3.2", "--memory=16Mi", "--cpu=500m"],
        "volumes": ["--volume=data,kind=host,source=/tmp,readOnly=true", "--volume=e,kind=empty,mode=0700,uid=1,gid=2",
                    "--mount=volume=data,target=/data", "busybox", "--user=1000", "--group=daemon",
                    "--supplementary-gids=1,2", "--caps-retain=CAP_NET_ADMIN", "--seccomp=mode=remove,errno=EPERM,@rkt/default-whitelist"],
        "net": ["--net=mynet:IP=10.1.0.5;FOO=bar,default", "--dns=8.8.8.8", "--hostname=h", "--hosts-entry=1.2.3.4=a",
                "docker://127.0.0.1:5000/a/b@sha256:" + "c" * 64],
        "flags": ["--insecure-options=image,http,tls,ondisk,all-run", "--pull-policy=update", "--inherit-env=false",
                  "--set-env=A=B", "--uuid-file-save=/tmp/u", "--ipc=private", "x", "--readonly-rootfs", "--cpu-shares=1024"],
        "durations": ["5s", "1m30s", "1.5h", "true", "0x10", "1Gi", "1e3"],
    }
    for name, words in samples.items():
        put("rkt_args", name, "\0".join(words))


def tar_layers():
    with tempfile.TemporaryDirectory() as t:
        for kind in ["good", "dotdot", "abs", "symlink-write", "hardlink-out"]:
            out = os.path.join(t, kind + ".tar")
            subprocess.run([sys.executable, os.path.join(REPO, "tests/harness/evil_tar.py"), kind, out, "seed"],
                           check=True)
            with open(out, "rb") as f:
                data = f.read()
            # Trailing zero blocks beyond the end marker add nothing for the fuzzer.
            put("tar_layer", kind, b"\x00" + data.rstrip(b"\0") + b"\0" * 1024)


def main():
    layout = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "target/test-fixtures/layout")
    cty()
    image_config()
    pod_manifest()
    registry_manifest(layout)
    registry_auth()
    aci()
    config_files()
    rkt_args()
    tar_layers()


if __name__ == "__main__":
    main()
