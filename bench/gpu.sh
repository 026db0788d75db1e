#!/usr/bin/env bash
# The library on a GPU host that has JAX but no TensorFlow and no network, in one call:
#   1. installs keras (and whichever of its and pytest's dependencies are missing) from
#      the wheels in bench/wheels/ into a scratch folder (nothing else is touched);
#   2. runs the library's twin tests there under KERAS_BACKEND=jax (`pytest -m jax`:
#      Keras twins, NumPy transcriptions, gradient checks of every layer, loss and
#      optimizer; full float32 matmuls, so the twins' tolerances hold on a GPU);
#   3. benchmarks a Transformer encoder stack of our layers against the same stack of
#      Keras's layers, float32 and mixed bfloat16, with the device's matmul peak
#      (bench/gpu.py says what it measures).
#
#   bash bench/gpu.sh fetch      # first, on a machine with the registry: fills bench/wheels
#                                # (about 30 MiB: keras, its dependencies, pytest; optree and
#                                # h5py for CPython 3.10-3.14 on Linux x86-64; not in git)
#   bash bench/gpu.sh [OUTDIR]   # then on the GPU host (OUTDIR: $OUT, else bench/results/gpu)
#                                # and commit its OUTDIR/gpu.json as bench/gpu.json: `make bench`
#                                # then puts it in RESULTS.md's GPU section (it also runs this
#                                # script on its own CPU every time, the "gpu" section)
#
# Writes OUTDIR/gpu.json (figures + test counts), OUTDIR/gpu.md (the RESULTS.md section),
# OUTDIR/tests.xml and OUTDIR/tests.log. Without a GPU it runs the same steps with small
# sizes (that is how it is tested: tests/bench/test_gpu_script.py). Environment:
#   PYTHON     the interpreter with JAX (default python3)
#   GPU_WHEELS the wheels folder (default bench/wheels; without keras wheels, the keras
#              already installed is used)
#   GPU_TESTS  the pytest selection (default: -m jax tests/layers tests/optimizers)
#   GPU_SIZE   small | large (default: large on a GPU, small elsewhere)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${GPU_WHEELS:-bench/wheels}

if [[ "${1:-}" == "fetch" ]]; then
  exec "$PYTHON" -m bench.gpu fetch "$WHEELS"
fi

OUTDIR=${1:-${OUT:-bench/results/gpu}}
mkdir -p "$OUTDIR"
export KERAS_BACKEND=jax TF_CPP_MIN_LOG_LEVEL=2 PYTHONDONTWRITEBYTECODE=1
start=$SECONDS

# 1. keras from the shipped wheels (or the installed one, when there are no wheels).
if compgen -G "$WHEELS/keras-*.whl" >/dev/null; then
  SITE=$(mktemp -d "${TMPDIR:-/tmp}/dlsuite-gpu-site.XXXXXX")
  trap 'rm -rf "$SITE"' EXIT
  "$PYTHON" bench/gpu.py install "$WHEELS" "$SITE"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
elif ! "$PYTHON" -c "import keras" 2>/dev/null; then
  echo "bench/gpu.sh: no keras here and no wheels in $WHEELS; run 'bash bench/gpu.sh fetch'" \
       "on a machine with the package registry first." >&2
  exit 2
fi
"$PYTHON" -c "import jax, keras; print('jax', jax.__version__, jax.devices(), '| keras',
keras.__version__, keras.backend.backend())"

# 2. The library's tests on this device (their failures are reported, not fatal here).
read -r -a selection <<<"${GPU_TESTS:--m jax tests/layers tests/optimizers}"
set +e
JAX_DEFAULT_MATMUL_PRECISION=highest "$PYTHON" -m pytest -q -p no:cacheprovider \
  --junitxml="$OUTDIR/tests.xml" "${selection[@]}" 2>&1 | tee "$OUTDIR/tests.log" | tail -n 15
tests_status=${PIPESTATUS[0]}
set -e

# 3. The benchmark (default matmul precision, as a user gets it).
"$PYTHON" -m bench.gpu bench --out "$OUTDIR/gpu.json" --tests "$OUTDIR/tests.xml" \
  ${GPU_SIZE:+--size "$GPU_SIZE"}
"$PYTHON" -m bench.gpu report "$OUTDIR/gpu.json" >"$OUTDIR/gpu.md"
echo "bench/gpu.sh: $((SECONDS - start)) s; tests exit status $tests_status; $OUTDIR/gpu.json"
exit "$tests_status"
