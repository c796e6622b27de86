#!/usr/bin/env bash
# The GPU tests of the sampler kernels, then the sampler benchmark, on a CUDA machine.
#
#   scripts/gpu-tests.sh [OUTDIR] [PYTEST ARGS...]   (default OUTDIR: benchmarks/results)
#
# Needs python3 with torch (CUDA), triton, pytest and hypothesis; nothing else of the project's
# dependencies (the tests import only sss.samplers). Writes OUTDIR/gpu-tests.log and the
# benchmark's JSON/CSV/Markdown (process_logits_gpu_kernels.*). Set BENCH=0 to skip the benchmark.
# Extra arguments go to pytest (e.g. -k large_vocab to run a part within a short device slot).
# On a fresh machine compiling the kernel variants takes most of the run (the 93 tests took
# about 269-314 s on an H200, 2026-12-03/04; with a warm cache 15 tests take 15 s): Triton's cache is kept in .triton-cache/
# (git-ignored; TRITON_CACHE_DIR overrides), so a machine that keeps that folder, or is given a
# copy of it, reuses the compiled kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-benchmarks/results}"
shift || true
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export TRITON_CACHE_DIR="${TRITON_CACHE_DIR:-$PWD/.triton-cache}"
python3 - <<'PY'
import torch, triton
print(f"torch {torch.__version__}, triton {triton.__version__}, {torch.cuda.get_device_name()}")
PY
python3 -m pytest -q -p no:cacheprovider tests/samplers/test_kernels_gpu.py "$@" 2>&1 | tee "$out/gpu-tests.log"
if [ "${BENCH:-1}" != 0 ]; then
  python3 benchmarks/bench_process_logits.py --device cuda --repeats 20 --budget 0.5 --warmup 3 \
      --label "triton kernels (apply_rules) vs torch path" --out "$out/process_logits_gpu_kernels.json"
fi
