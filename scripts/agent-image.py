#!/usr/bin/env python3
"""Builds Ferry's agent image as an OCI image layout, without a container daemon.

    python3 scripts/agent-image.py [--binary target/release/ferry-agent] [--out DIR]
                                   [--tag ferry-agent:VERSION] [--epoch SECONDS]

The image holds one layer: the agent at /usr/local/bin/ferry-agent (its entrypoint),
what it needs to run and nothing else:
- when the binary is dynamically linked (Rust's default on Linux), the shared
  libraries `ldd` names (the dynamic loader, libc, libm, libgcc_s) at their paths, and
  glibc's resolver modules (libnss_dns, libnss_files, libresolv) with an
  /etc/nsswitch.conf, so host names resolve;
- the CA certificates of this machine (/etc/ssl/certs/ca-certificates.crt), for HTTPS
  to the object store;
- /etc/passwd and /etc/group naming root, and an empty /tmp.

The build is reproducible: files sorted, owned by root, dated `--epoch` (default:
SOURCE_DATE_EPOCH, else the last commit's time, else 0), tar and gzip headers without
times, JSON written canonically. Two builds from the same binary give the same
digests; the last line printed is the manifest's digest.

Push it with skopeo (`skopeo copy oci:DIR:TAG docker://REGISTRY/ferry-agent:TAG`) and
name it in Ferry's settings (`agent.image`) or with --agent-image. Those who build with
Docker use src/agent/Dockerfile instead.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRYPOINT = "/usr/local/bin/ferry-agent"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
NSS = ["libnss_dns.so.2", "libnss_files.so.2", "libresolv.so.2"]


def version():
    with open(os.path.join(ROOT, "Cargo.toml"), encoding="utf-8") as f:
        m = re.search(r'^\[workspace\.package\][^\[]*?^version\s*=\s*"([^"]+)"', f.read(), re.M | re.S)
    return m.group(1) if m else "0.0.0"


def default_epoch():
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%ct"],
                             capture_output=True, text=True, check=True)
        return int(out.stdout.strip())
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 0


def shared_libraries(binary):
    """The files the dynamic loader maps for `binary` (empty for a static one)."""
    try:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True)
    except OSError:
        return []
    if out.returncode != 0 or "not a dynamic executable" in out.stdout + out.stderr:
        return []
    libs = []
    for line in out.stdout.splitlines():
        line = line.strip()
        if "=>" in line:
            path = line.split("=>", 1)[1].split("(")[0].strip()
        else:
            path = line.split("(")[0].strip()
        if path.startswith("/") and os.path.exists(path):
            libs.append(path)
        elif "not found" in line:
            sys.exit(f"agent-image: {binary} needs a library this machine lacks: {line}")
    return libs


def resolver_modules(libs):
    """glibc's NSS modules, from the folder libc came from."""
    libc = next((l for l in libs if os.path.basename(l).startswith("libc.so")), None)
    if not libc:
        return []
    folder = os.path.dirname(os.path.realpath(libc))
    return [os.path.join(folder, n) for n in NSS if os.path.exists(os.path.join(folder, n))]


def layer(binary, epoch):
    """The layer's tar bytes: every entry sorted, root-owned, dated `epoch`."""
    entries = {}  # path in image -> (kind, data or target, mode)

    def add_dirs(path):
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            entries.setdefault("/".join(parts[:i]), ("dir", None, 0o755))

    def add_file(path, data, mode):
        add_dirs(path)
        entries[path.strip("/")] = ("file", data, mode)

    with open(binary, "rb") as f:
        add_file(ENTRYPOINT, f.read(), 0o755)
    libs = shared_libraries(binary)
    for lib in libs + resolver_modules(libs):
        real = os.path.realpath(lib)
        with open(real, "rb") as f:
            add_file(real, f.read(), 0o755)
        if lib != real:
            add_dirs(lib)
            entries[lib.strip("/")] = ("link", real, 0o777)
    if libs:
        add_file("/etc/nsswitch.conf", b"hosts: files dns\npasswd: files\ngroup: files\n", 0o644)
    if os.path.exists(CA_BUNDLE):
        with open(CA_BUNDLE, "rb") as f:
            add_file(CA_BUNDLE, f.read(), 0o644)
    add_file("/etc/passwd", b"root:x:0:0:root:/:/usr/local/bin/ferry-agent\n", 0o644)
    add_file("/etc/group", b"root:x:0:\n", 0o644)
    add_file("/etc/hosts", b"127.0.0.1 localhost\n::1 localhost\n", 0o644)
    entries["tmp"] = ("dir", None, 0o1777)

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(entries):
            kind, data, mode = entries[path]
            info = tarfile.TarInfo(path)
            info.mtime = epoch
            info.mode = mode
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "link":
                info.type = tarfile.SYMTYPE
                info.linkname = data
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def write_blob(out, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(out, "blobs", "sha256", digest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "ferry-agent"))
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "agent-image"))
    ap.add_argument("--tag", default=None, help="the reference name in the layout (default: VERSION)")
    ap.add_argument("--epoch", type=int, default=None)
    a = ap.parse_args()
    if not os.path.isfile(a.binary):
        sys.exit(f"agent-image: {a.binary} does not exist: build it first "
                 "(cargo build --release -p ferry-agent), or give --binary")
    epoch = default_epoch() if a.epoch is None else a.epoch
    tag = a.tag or version()
    created = __import__("datetime").datetime.fromtimestamp(epoch, __import__("datetime").timezone.utc)
    created = created.strftime("%Y-%m-%dT%H:%M:%SZ")

    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    os.makedirs(a.out)
    tar = layer(a.binary, epoch)
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=9, filename="") as z:
        z.write(tar)
    layer_digest, layer_size = write_blob(a.out, gz.getvalue())
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {
            "Entrypoint": [ENTRYPOINT],
            "Env": ["PATH=/usr/local/bin", "SSL_CERT_FILE=" + CA_BUNDLE],
            "User": "0",
            "WorkingDir": "/",
            "Labels": {
                "org.opencontainers.image.title": "ferry-agent",
                "org.opencontainers.image.version": version(),
            },
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
        "history": [{"created": created, "created_by": "scripts/agent-image.py"}],
    }
    config_digest, config_size = write_blob(a.out, canonical(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": layer_size}],
    }
    manifest_digest, manifest_size = write_blob(a.out, canonical(manifest))
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
    }
    with open(os.path.join(a.out, "index.json"), "wb") as f:
        f.write(canonical(index))
    with open(os.path.join(a.out, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))
    print(f"agent image {tag} in {a.out} ({layer_size} bytes compressed)")
    print(manifest_digest)


if __name__ == "__main__":
    main()
