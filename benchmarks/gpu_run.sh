#!/bin/sh
# The GPU run of benchmarks/particles.py (benchmarks/README.md, "On a GPU"): the particles benchmark on
# an NVIDIA GPU, N = 2^14 .. 2^20 at K*B = 128, M = 16, field space, on every device JAX sees;
# streamed against resident at N = 2^18; then the 200-step long run at N = 2^16 (one group). From
# the repository root on the device machine:
#     sh benchmarks/gpu_run.sh           (writes to $OUT, or benchmarks/results/)
#     QUICK=1 PYTHON=.venv/bin/python sh benchmarks/gpu_run.sh    (tiny sizes, any machine)
#     STREAMED_ONLY=1 sh benchmarks/gpu_run.sh    (streamed against resident, the rest small)
# It uses the JAX, Equinox, Diffrax and Optax installed there (no network needed); where pip
# reaches PyPI, `pip install -e '.[cuda]'` installs the CUDA build of JAX instead.
set -eu
python="${PYTHON:-python3}"
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.95
"$python" -c "import jax, equinox, diffrax, optax; print('jax', jax.__version__, jax.devices())"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
fi
if [ -n "${QUICK:-}" ]; then
    sizes="--quick"
elif [ -n "${STREAMED_ONLY:-}" ]; then
    # streamed (host callbacks, memory kinds) against resident at N = 2^18; the other sections
    # at N = 2^14 only (a few minutes of device time)
    sizes="--log2n 14 --devices-log2n 14 --streamed-log2n 18"
else
    sizes="--log2n 14,16,18,20 --devices-log2n 20 --streamed-log2n 18"
fi
# shellcheck disable=SC2086
"$python" benchmarks/particles.py $sizes --out "$out" 2>&1 | tee "$out/particles.log"
# the 200-step run of benchmarks/README.md (`long_runs.py`) at GPU size: teacher data, batch 16, M = 4,
# 200 SGD steps, field space, one group of N = 2^16 particles; the CLI prints its wall time
if [ -n "${QUICK:-}" ]; then
    long="--particles 256 --set training.steps=8"
else
    long="--particles 65536 --set training.steps=200"
fi
# shellcheck disable=SC2086
"$python" -m nfd_sde._cli solve $long --groups 1 --levels 1 --depth-steps 4 \
    --representation field --set training.batch=16 --out "$out/long_run" --overwrite 2>&1 |
    tee "$out/long_run.log"
