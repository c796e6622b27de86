#!/usr/bin/env bash
# Buffer-size variants of the sampler kernels (benchmarks/kernel_smoke.py per variant): the
# histogram rounds' candidate buffer (SSS_KERNEL_CAP; round 0's is 4x it) and bin count
# (SSS_KERNEL_BINS), both read when sss.samplers.kernels.triton_rules is imported.
#   benchmarks/kernel_variants.sh "CAP BINS" ... -- [kernel_smoke.py args]
cd "$(dirname "$0")/.."
variants=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do variants+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
for v in "${variants[@]}"; do
  set -- $v "$@"
  echo "== cap $1 bins $2"
  SSS_KERNEL_CAP=$1 SSS_KERNEL_BINS=$2 python3 benchmarks/kernel_smoke.py "${@:3}"
  shift 2
done
