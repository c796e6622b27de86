#!/usr/bin/env bash
# Launch-shape variants of the sampler kernel (benchmarks/kernel_smoke.py per variant):
#   benchmarks/kernel_variants.sh "CAP WARPS BINS" ... -- [kernel_smoke.py args]
cd "$(dirname "$0")/.."
variants=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do variants+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
for v in "${variants[@]}"; do
  set -- $v "$@"
  echo "== cap $1 warps $2 bins $3"
  SSS_KERNEL_CAP=$1 SSS_KERNEL_WARPS=$2 SSS_KERNEL_BINS=$3 python3 benchmarks/kernel_smoke.py "${@:4}"
  shift 3
done
