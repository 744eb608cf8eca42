#!/usr/bin/env bash
# Build containers/dis.sif without network access beyond the package registries:
#  1. a Debian 12 base image from debootstrap (Debian's mirror) unless build/base.sif exists
#     (BASE_SIF=path to use another image with python3.11 and the venv module);
#  2. wheels of DIS and the dependency versions the host installed, built on this host with its Python 3.11;
#  3. the sha256-checked model (dis fetch-model: the DIS cache's copy, else downloaded);
#  4. apptainer build dis.sif dis.def  (then its %test runs).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd .. && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
mkdir -p build
command -v apptainer >/dev/null || { echo "apptainer not found (on Debian 12 test machines: ../shared/apptainer/install-apptainer.sh)" >&2; exit 2; }
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "build the wheels with Python 3.11 (the image has 3.11)"'
if [ -n "${BASE_SIF:-}" ]; then cp "$BASE_SIF" build/base.sif; fi
if [ ! -s build/base.sif ]; then
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
  MIRROR=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/{print $2; exit}')
  [ -n "$MIRROR" ] || MIRROR=$(grep -h '^deb ' /etc/apt/sources.list | awk '{print $2; exit}')
  rm -rf build/rootfs
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,libegl1,libgles2,libgl1 bookworm build/rootfs "${MIRROR%-security}"
  find build/rootfs/dev -mindepth 1 -delete  # device nodes: apptainer provides /dev; a --fakeroot build cannot create them
  apptainer build --force build/base.sif build/rootfs
  rm -rf build/rootfs
fi
rm -rf build/wheels && mkdir -p build/wheels
"$PY" -m pip wheel -q -w build/wheels "$ROOT"
"$PY" -m pip download -q --no-deps -d build/wheels -r "$ROOT/requirements/mediapipe.txt"
cp "$ROOT/requirements/mediapipe.txt" build/requirements-mediapipe.txt
# the commit the wheel was built from, for every output's provenance (source_revision); -dirty if edited
REV=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$REV" != unknown ] && [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ]; then REV="$REV-dirty"; fi
echo "$REV" > build/source-revision
"$ROOT/.venv/bin/dis" fetch-model --dest build/face_landmarker.task
# --fakeroot: root builds work without the full capability set (this also suits unprivileged users)
apptainer build --force --fakeroot dis.sif dis.def
echo "built $(pwd)/dis.sif"
