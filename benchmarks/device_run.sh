#!/usr/bin/env bash
# The accelerator run (benchmarks/accelerator.py) on a borrowed GPU machine, from the repository root:
#
#     bash benchmarks/device_run.sh --download   # here, once, with internet to PyPI: the wheels into .whl/
#     bash benchmarks/device_run.sh [ARGS...]    # there (carry .whl): install them, run, log into $OUT
#
# The device image (Python 3.12) has jax (CUDA), flax, optax, orbax-checkpoint, numpy, scipy, scikit-learn,
# matplotlib, pillow, tqdm, absl-py, protobuf, etils, psutil, pyarrow, requests, tensorboard... but not the rest
# of this project's dependencies and theirs: WHEELS below, pinned to the versions the project is tested with here.
# They are installed without their dependencies (--no-deps, --no-index) into /tmp/site, first on PYTHONPATH, and
# the repository's own packages come from the working tree (PYTHONPATH=$PWD): nothing is built there.
#   grain, array-record                   train/data (images, text) import grain; TFDS stores ArrayRecord
#   ml-collections                        every config (train/core)
#   tensorboardX                          train/core/writers
#   tensorflow-datasets, importlib_resources, and TFDS's own: dm-tree, immutabledict, promise, simple-parsing
#     (docstring-parser), tensorflow-metadata (googleapis-common-protos), termcolor, toml
#                                         the digits dataset of the default configs (train.ddpm's default run)
#   portpicker                            grain's
# promise has no wheel on PyPI (an sdist): --download builds its pure-Python wheel here.
# ARGS go to benchmarks.accelerator (e.g. --skip=train_ddpm, --quick); ZOO_COMMIT=SHA names the commit measured
# (the copied working tree has no .git). The log, accelerator.json and accelerator.md go to $OUT (the device
# command's output folder; runs/accelerator when unset).
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=(
  array-record==0.8.6 dm-tree==0.1.10 docstring-parser==0.18.0 googleapis-common-protos==1.76.0 grain==0.2.18
  immutabledict==4.3.1 importlib-resources==7.1.0 ml-collections==1.1.0 portpicker==1.6.0 simple-parsing==0.1.9
  tensorboardX==2.6.5 tensorflow-datasets==4.9.10 tensorflow-metadata==1.21.0 termcolor==3.3.0 toml==0.10.2
)
SDISTS=(promise==2.3)

if [[ "${1:-}" == "--download" ]]; then
  set -e
  mkdir -p .whl
  platforms=()
  for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
  done
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl "${WHEELS[@]}"
  python3 -m pip wheel --no-deps -w .whl "${SDISTS[@]}"
  ls -l .whl
  du -sh .whl
  exit 0
fi

OUT="${OUT:-runs/accelerator}"
mkdir -p "$OUT"

run() {
  echo "== $(date -u +%FT%TZ) device_run.sh $*"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl ||
    echo "!! pip install of .whl/ failed: the sections that need a missing package will record the error"
  export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
  nvidia-smi || echo "(no nvidia-smi)"
  python3 -c "import sys, jax; print(sys.version.split()[0], 'jax', jax.__version__, jax.devices())"
  python3 -m pip list 2>/dev/null |
    grep -iE '^(jax|jaxlib|jax-cuda[0-9]*-(plugin|pjrt)|flax|optax|orbax-checkpoint|numpy|protobuf|etils) ' || true
  python3 -m benchmarks.accelerator --out "$OUT" "$@"
  local status=$?
  echo "== $(date -u +%FT%TZ) benchmarks.accelerator exited with $status; $OUT: $(ls "$OUT" | tr '\n' ' ')"
  return $status
}

run "$@" 2>&1 | tee -a "$OUT/device_run.log"
exit "${PIPESTATUS[0]}"
