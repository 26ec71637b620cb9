#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one run: the GPU tests, then bench/speed.py one target at a
# time (each target's JSON is written as soon as it is measured, so a run cut short keeps what it
# finished). Results go to $OUT (default bench/results/gpu).
#
#   bench/gpu.sh            # on a machine with CUDA, PyTorch and the project's dependencies
#
# On a machine that has PyTorch but not the rest, put the missing wheels in .whl/ first; the
# script installs them into /tmp/site. Where pip can reach a registry:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       -d .whl diffusers==0.42.1 importlib_metadata
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/results/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:.${PYTHONPATH:+:$PYTHONPATH}
else
    export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
fi
python3 - <<'EOF' | tee "$out/machine.txt"
import torch
print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA")
EOF
python3 -m pytest -q -p no:cacheprovider -o addopts= -m gpu tests/worker/unlearning 2>&1 | tee "$out/gpu_tests.log" ||
    echo "GPU tests failed (log: $out/gpu_tests.log); timing anyway" >&2
for target in ${TARGETS:-sd21 toy sd15 sdxl}; do
    python3 bench/speed.py --targets "$target" > "$out/speed_$target.json" ||
        echo "bench/speed.py failed on $target" >&2
done
# torch.compile on CUDA has not been measured (the worker leaves it off there): SD 2.1 compiled.
if [[ " ${TARGETS:-sd21} " == *" sd21 "* ]]; then
    python3 bench/speed.py --targets sd21 --compile on > "$out/speed_sd21_compiled.json" ||
        echo "bench/speed.py --compile on failed on sd21" >&2
fi
