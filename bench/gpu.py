"""The library on Keras's JAX backend, for a GPU host that has JAX but no TensorFlow.

bench/gpu.sh drives it; each subcommand is also usable alone:

    python -m bench.gpu fetch [WHEELS]         # here, with the registry: fill bench/wheels
    python bench/gpu.py install WHEELS SITE    # there, no network: keras (+ what is missing)
    python -m bench.gpu bench --out FILE.json  # the benchmark below
    python -m bench.gpu report FILE.json [TESTS.xml]   # the markdown section

The benchmark: a post-norm Transformer encoder stack (`layers.TransformerEncoderBlock`:
our MultiHeadAttention, LayerNorm and Keras Dense layers) against the same stack
built from Keras's layers (`keras.layers.MultiHeadAttention`, `LayerNormalization`,
`Dense`), weights copied so both compute the same function, timed as one
jit-compiled training step (forward + backward: the loss mean(y ** 2) and its
gradients with respect to every weight), in float32 and in mixed bfloat16
(`mixed_bfloat16`: bfloat16 compute, float32 weights). The sides alternate over
several rounds and the median step time of each is kept. It reports, per
precision, the step-time ratio ours / Keras and the fraction of the machine's
bfloat16 matmul peak each side reaches (the model's matmul FLOPs, 3x the forward
pass, per second, over the TFLOP/s of a large jnp.matmul measured in the same run).

Sizes: on a GPU (jax.default_backend() == "gpu") a BERT-large-like stack
(4 layers, d = 1024, 16 heads, ff = 4096, batch 16 x 512 tokens); elsewhere a
small one (2 layers, d = 128, 4 heads, ff = 512, batch 4 x 64 tokens) so that the
same script runs, and is tested, on a CPU.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import zipfile

# Distributions keras 3 and pytest need beyond what a JAX installation brings
# (numpy, ml_dtypes, scipy, opt_einsum): (distribution, module to import).
PURE = [
    ("absl-py", "absl"), ("rich", "rich"), ("markdown-it-py", "markdown_it"), ("mdurl", "mdurl"),
    ("pygments", "pygments"), ("namex", "namex"), ("packaging", "packaging"),
    ("typing_extensions", "typing_extensions"), ("pytest", "pytest"), ("pluggy", "pluggy"),
    ("iniconfig", "iniconfig"), ("exceptiongroup", "exceptiongroup"), ("tomli", "tomli"),
]
BINARY = [("optree", "optree"), ("h5py", "h5py")]
OLD_PYTHON = ["exceptiongroup", "tomli"]  # pytest's, on Python 3.10 only
PYTHONS = ["3.10", "3.11", "3.12", "3.13", "3.14"]
PLATFORMS = ["manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_28_x86_64"]


# -- wheels --------------------------------------------------------------------------------

def fetch(wheels):
    """Downloads keras and its dependencies' wheels (every CPython 3.10-3.14, Linux x86-64).

    keras is the version installed here (the one the test suite runs with).
    """
    from importlib import metadata

    try:
        keras = f"keras=={metadata.version('keras')}"
    except metadata.PackageNotFoundError:
        keras = "keras"
    os.makedirs(wheels, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", wheels]
    binary = ["--only-binary=:all:"] + [a for p in PLATFORMS for a in ("--platform", p)]
    pure = [d for d, _ in PURE if d not in OLD_PYTHON]
    subprocess.run(pip + [keras] + pure, check=True)
    for version in PYTHONS:
        extra = OLD_PYTHON if version == "3.10" else []
        subprocess.run(pip + binary + ["--python-version", version]
                       + [d for d, _ in BINARY] + extra, check=True)
    size = sum(os.path.getsize(os.path.join(wheels, f)) for f in os.listdir(wheels))
    print(f"{len(os.listdir(wheels))} wheels, {size / 2**20:.1f} MiB in {wheels}")


def _importable(module):
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _wheel_fits(name):
    """Whether a wheel file's tags fit this interpreter (pure, or CPython X.Y on this machine)."""
    parts = name[:-len(".whl")].split("-")
    python, abi, plat = parts[-3], parts[-2], parts[-1]
    if plat == "any":
        return True
    here = f"cp{sys.version_info.major}{sys.version_info.minor}"
    return (here in python.split(".") and platform.machine() in plat and "linux" in plat
            and abi in (here, "abi3", "none"))


def install(wheels, site):
    """Installs keras (always) and each missing dependency from `wheels` into `site`.

    pip (--no-index --no-deps --target) when this Python has it, else the wheels
    are unpacked, which is all a wheel install does for these packages.
    """
    files = sorted(f for f in os.listdir(wheels) if f.endswith(".whl"))
    names = ["keras"] + [d for d, module in PURE + BINARY if not _importable(module)]
    if sys.version_info >= (3, 11):
        names = [n for n in names if n not in OLD_PYTHON]
    os.makedirs(site, exist_ok=True)
    if _importable("pip"):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index",
                        "--no-deps", "--find-links", wheels, "--target", site, *names],
                       check=True)
    else:
        for name in names:
            key = name.replace("-", "_").lower() + "-"
            fits = [f for f in files if f.lower().startswith(key) and _wheel_fits(f)]
            if not fits:
                raise SystemExit(f"no wheel of {name} for this Python in {wheels}")
            with zipfile.ZipFile(os.path.join(wheels, fits[-1])) as z:
                z.extractall(site)
    print(f"installed into {site}: {' '.join(names)}")


# -- the benchmark -------------------------------------------------------------------------

GPU_SIZES = dict(layers=4, heads=16, key_dim=64, ff=4096, batch=16, seq=512,
                 matmul_n=8192, rounds=5, steps=10)
CPU_SIZES = dict(layers=2, heads=4, key_dim=32, ff=512, batch=4, seq=64,
                 matmul_n=1024, rounds=3, steps=3)


def _device():
    import jax

    d = jax.devices()[0]
    return {"platform": d.platform, "kind": getattr(d, "device_kind", str(d)),
            "count": jax.device_count()}


def matmul_peak(n, dtype, repeats=10, rounds=3):
    """Best TFLOP/s of an (n, n) x (n, n) jnp.matmul in `dtype`, jit-compiled."""
    import jax
    import jax.numpy as jnp

    key_a, key_b = jax.random.split(jax.random.PRNGKey(0))
    a = jax.random.normal(key_a, (n, n), jnp.float32).astype(dtype)
    b = jax.random.normal(key_b, (n, n), jnp.float32).astype(dtype)
    matmul = jax.jit(jnp.matmul)
    matmul(a, b).block_until_ready()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        out = [matmul(a, b) for _ in range(repeats)]
        jax.block_until_ready(out)
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * n ** 3 / best / 1e12


def keras_encoder_block(num_heads, key_dim, ff_dim, epsilon, dtype, name):
    """The encoder block from Keras's layers: LN(x + MHA(x, x)), LN(x1 + FFN(x1))."""
    import keras

    class KerasEncoderBlock(keras.layers.Layer):
        def __init__(self):
            super().__init__(dtype=dtype, name=name)
            self.attention = keras.layers.MultiHeadAttention(num_heads, key_dim, dtype=dtype)
            self.norm1 = keras.layers.LayerNormalization(epsilon=epsilon, dtype=dtype)
            self.ffn_hidden = keras.layers.Dense(ff_dim, activation="relu", dtype=dtype)
            self.ffn_output = None
            self.norm2 = keras.layers.LayerNormalization(epsilon=epsilon, dtype=dtype)

        def build(self, shape):
            self.attention.build(shape, shape)
            self.norm1.build(shape)
            self.ffn_hidden.build(shape)
            self.ffn_output = keras.layers.Dense(shape[-1], dtype=self.dtype_policy)
            self.ffn_output.build(tuple(shape[:-1]) + (ff_dim,))
            self.norm2.build(shape)

        def call(self, x):
            x1 = self.norm1(x + self.attention(x, x))
            return self.norm2(x1 + self.ffn_output(self.ffn_hidden(x1)))

    return KerasEncoderBlock()


def build_stacks(sizes, dtype):
    """(ours, Keras's) encoder stacks of `sizes`, Keras's weights copied from ours."""
    import keras

    import layers

    shape = (sizes["batch"], sizes["seq"], sizes["heads"] * sizes["key_dim"])
    keras.utils.set_random_seed(0)
    ours = keras.Sequential(
        [keras.Input(shape[1:])]
        + [layers.TransformerEncoderBlock(sizes["heads"], sizes["key_dim"], sizes["ff"],
                                          dropout=0.0, dtype=dtype, name=f"ours_{i}")
           for i in range(sizes["layers"])])
    theirs = keras.Sequential(
        [keras.Input(shape[1:])]
        + [keras_encoder_block(sizes["heads"], sizes["key_dim"], sizes["ff"], 1e-6, dtype,
                               f"keras_{i}") for i in range(sizes["layers"])])
    # Same weight order: attention (query, key, value, output kernels and biases),
    # norm1, ffn_hidden, ffn_output, norm2 in ours; Keras's by its own paths.
    for a, b in zip(ours.layers, theirs.layers, strict=True):
        keras_weights = (b.attention.weights + b.norm1.weights + b.ffn_hidden.weights
                         + b.ffn_output.weights + b.norm2.weights)
        ours_weights = (a.attention.weights + a.norm1.weights + a.ffn_hidden.weights
                        + a.ffn_output.weights + a.norm2.weights)
        for w_ours, w_keras in zip(ours_weights, keras_weights, strict=True):
            assert tuple(w_ours.shape) == tuple(w_keras.shape), (w_ours.path, w_keras.path)
            w_keras.assign(w_ours.value)
    return ours, theirs, shape


def training_step(model):
    """jit(value_and_grad) of mean(model(x) ** 2) over the trainable weights, and the weights."""
    import jax
    import jax.numpy as jnp

    weights = [v.value for v in model.trainable_variables]
    state = [v.value for v in model.non_trainable_variables]

    def loss(weights, x):
        y, _ = model.stateless_call(weights, state, x, training=True)
        return jnp.mean(jnp.square(y.astype(jnp.float32)))

    return jax.jit(jax.value_and_grad(loss)), weights


def step_flops(sizes):
    """Matmul FLOPs of one training step: 3 x the forward pass (backward = 2 x forward)."""
    b, s, h, k, f = (sizes[n] for n in ("batch", "seq", "heads", "key_dim", "ff"))
    d = h * k
    per_layer = (2 * b * s * d * h * k * 4      # Q, K, V and output projections
                 + 2 * b * h * s * s * k * 2    # Q K^T and softmax(.) V
                 + 2 * b * s * d * f * 2)       # the two feed-forward matmuls
    return 3 * sizes["layers"] * per_layer


def time_pair(sizes, dtype):
    """Median step seconds of ours and Keras's (alternating rounds) and their output gap."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    ours, theirs, shape = build_stacks(sizes, dtype)
    x = jax.random.normal(jax.random.PRNGKey(1), shape, jnp.float32)
    y_ours, y_keras = (np.asarray(m(x), np.float32) for m in (ours, theirs))
    gap = float(np.max(np.abs(y_ours - y_keras)))
    steps = {"ours": training_step(ours), "keras": training_step(theirs)}
    compile_seconds = {}
    for name, (step, weights) in steps.items():
        start = time.perf_counter()
        jax.block_until_ready(step(weights, x))
        compile_seconds[name] = time.perf_counter() - start
    times = {name: [] for name in steps}
    for _ in range(sizes["rounds"]):
        for name, (step, weights) in steps.items():
            start = time.perf_counter()
            out = [step(weights, x) for _ in range(sizes["steps"])]
            jax.block_until_ready(out)
            times[name].append((time.perf_counter() - start) / sizes["steps"])
    return {name: statistics.median(t) for name, t in times.items()}, gap, compile_seconds


def run_bench(size=None):
    import jax
    import keras

    on_gpu = jax.default_backend() == "gpu"
    size = size or ("large" if on_gpu else "small")
    sizes = GPU_SIZES if size == "large" else CPU_SIZES
    peak_bf16 = matmul_peak(sizes["matmul_n"], "bfloat16")
    peak_fp32 = matmul_peak(sizes["matmul_n"], "float32")
    flops = step_flops(sizes)
    rows = []
    for precision, dtype in (("float32", "float32"), ("bfloat16", "mixed_bfloat16")):
        seconds, gap, compiled = time_pair(sizes, dtype)
        row = {"precision": precision, "dtype_policy": dtype,
               "ours_ms": 1e3 * seconds["ours"], "keras_ms": 1e3 * seconds["keras"],
               "ratio": seconds["ours"] / seconds["keras"],
               "max_output_gap": gap, "compile_seconds": compiled}
        for side in ("ours", "keras"):
            tflops = flops / seconds[side] / 1e12
            row[f"{side}_tflops"] = tflops
            row[f"{side}_fraction_of_bf16_peak"] = tflops / peak_bf16
        rows.append(row)
        print(f"{precision}: ours {row['ours_ms']:.2f} ms, Keras {row['keras_ms']:.2f} ms, "
              f"ratio {row['ratio']:.3f}; {row['ours_tflops']:.2f} vs "
              f"{row['keras_tflops']:.2f} TFLOP/s ({row['ours_fraction_of_bf16_peak']:.1%} vs "
              f"{row['keras_fraction_of_bf16_peak']:.1%} of the bf16 peak)", flush=True)
    return {
        "size": size, "sizes": sizes, "device": _device(), "backend": keras.backend.backend(),
        "jax": jax.__version__, "keras": keras.__version__, "python": platform.python_version(),
        "matmul_precision": os.environ.get("JAX_DEFAULT_MATMUL_PRECISION", "default"),
        "peak_bf16_tflops": peak_bf16, "peak_fp32_tflops": peak_fp32,
        "step_flops": flops, "rows": rows,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run_script_here():
    """`make bench`'s "gpu" section: bench/gpu.sh with this Python (JAX from the dev
    extras, the installed keras, small sizes without a GPU); returns its gpu.json."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.join(root, "bench", "results", "gpu")
    env = {**os.environ, "PYTHON": sys.executable,
           "GPU_WHEELS": os.path.join(out, "no_wheels")}  # the keras installed here
    env.pop("KERAS_BACKEND", None)  # the script sets it
    subprocess.run(["bash", os.path.join(root, "bench", "gpu.sh"), out], env=env, check=True)
    with open(os.path.join(out, "gpu.json")) as f:
        return json.load(f)


# -- the report ----------------------------------------------------------------------------

def test_counts(junit_xml):
    """{tests, failures, errors, skipped, seconds} from pytest's --junitxml file."""
    import xml.etree.ElementTree as ET

    root = ET.parse(junit_xml).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    return {k: (float if k == "time" else int)(suite.get(k, 0))
            for k in ("tests", "failures", "errors", "skipped", "time")}


def markdown(result):
    """The RESULTS.md section for one run of bench/gpu.sh."""
    dev, sizes = result["device"], result["sizes"]
    lines = [
        f"Device: {dev['kind']} ({dev['platform']}), JAX {result['jax']}, Keras "
        f"{result['keras']} on {result['backend']}, Python {result['python']}; "
        f"{result['date']}.",
        "",
        f"Encoder stack: {sizes['layers']} post-norm blocks, d = "
        f"{sizes['heads'] * sizes['key_dim']}, {sizes['heads']} heads, ff = {sizes['ff']}, "
        f"batch {sizes['batch']} x {sizes['seq']} tokens; one jit-compiled step = forward + "
        f"backward, {result['step_flops'] / 1e9:.1f} GFLOP of matmuls. Matmul peak measured in "
        f"the same run ({sizes['matmul_n']}^2 jnp.matmul): bfloat16 "
        f"{result['peak_bf16_tflops']:.2f} TFLOP/s, float32 {result['peak_fp32_tflops']:.2f} "
        f"TFLOP/s (matmul precision: {result['matmul_precision']}).",
        "",
        "| precision | ours ms/step | Keras ms/step | ours / Keras | ours TFLOP/s | "
        "Keras TFLOP/s | ours, share of bf16 peak | Keras, share of bf16 peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['precision']} | {r['ours_ms']:.2f} | {r['keras_ms']:.2f} | {r['ratio']:.3f} | "
            f"{r['ours_tflops']:.3f} | {r['keras_tflops']:.3f} | "
            f"{r['ours_fraction_of_bf16_peak']:.1%} | {r['keras_fraction_of_bf16_peak']:.1%} |")
    tests = result.get("tests")
    if tests:
        lines += ["", f"Library tests on this device under JAX (`pytest -m jax`): "
                      f"{tests['tests'] - tests['failures'] - tests['errors'] - tests['skipped']}"
                      f" passed, {tests['failures'] + tests['errors']} failed, "
                      f"{tests['skipped']} skipped in {tests['time']:.0f} s."]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fetch")
    p.add_argument("wheels", nargs="?", default=os.path.join(os.path.dirname(__file__),
                                                                "wheels"))
    p = sub.add_parser("install")
    p.add_argument("wheels")
    p.add_argument("site")
    p = sub.add_parser("bench")
    p.add_argument("--out", required=True)
    p.add_argument("--size", choices=["small", "large"])
    p.add_argument("--tests", help="pytest's --junitxml file of the library tests")
    p = sub.add_parser("report")
    p.add_argument("result")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        fetch(args.wheels)
    elif args.command == "install":
        install(args.wheels, args.site)
    elif args.command == "bench":
        result = run_bench(args.size)
        if args.tests and os.path.exists(args.tests):
            result["tests"] = test_counts(args.tests)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(markdown(result))
    else:
        with open(args.result) as f:
            print(markdown(json.load(f)))


if __name__ == "__main__":
    main()
