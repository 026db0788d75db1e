"""bench/gpu.sh on this CPU under JAX: it runs, and its JSON and markdown hold what they say.

Until the script has run on a GPU host this is its test (small sizes are chosen
automatically without a GPU). About a minute: in the slow suite.
"""

import json
import os
import subprocess
import sys

import pytest

from bench import gpu

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_gpu_script_runs_on_cpu_and_writes_its_json(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "GPU_WHEELS": str(tmp_path / "no_wheels"),
           "GPU_TESTS": "-m jax tests/layers/test_maxout.py tests/optimizers/test_schedules.py"}
    env.pop("KERAS_BACKEND", None)  # the script sets it
    run = subprocess.run(["bash", os.path.join(ROOT, "bench", "gpu.sh"), str(out)], env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads((out / "gpu.json").read_text())
    assert result["backend"] == "jax" and result["device"]["platform"] == "cpu"
    assert result["size"] == "small" and result["sizes"] == gpu.CPU_SIZES
    assert result["peak_bf16_tflops"] > 0 and result["peak_fp32_tflops"] > 0
    assert [r["precision"] for r in result["rows"]] == ["float32", "bfloat16"]
    for row in result["rows"]:
        assert row["ours_ms"] > 0 and row["keras_ms"] > 0
        assert row["ratio"] == pytest.approx(row["ours_ms"] / row["keras_ms"])
        for side in ("ours", "keras"):
            assert 0 < row[f"{side}_fraction_of_bf16_peak"] < 5
    # The two stacks compute the same function (weights copied).
    assert result["rows"][0]["max_output_gap"] < 1e-3
    tests = result["tests"]
    assert tests["tests"] > tests["skipped"] and tests["failures"] == tests["errors"] == 0
    section = (out / "gpu.md").read_text()
    assert "| float32 |" in section and "| bfloat16 |" in section and "passed" in section


def test_step_flops_counts_every_matmul():
    sizes = dict(layers=1, heads=2, key_dim=3, ff=5, batch=1, seq=4)
    d = 6
    forward = 2 * 4 * d * d * 4 + 2 * 2 * 4 * 4 * 3 * 2 + 2 * 4 * d * 5 * 2
    assert gpu.step_flops(sizes) == 3 * forward


@pytest.mark.parametrize("name, fits", [
    ("keras-3.15.1-py3-none-any.whl", True),
    (f"optree-0.20.0-cp{sys.version_info.major}{sys.version_info.minor}-"
     f"cp{sys.version_info.major}{sys.version_info.minor}-manylinux_2_28_x86_64.whl",
     os.uname().machine == "x86_64"),
    ("optree-0.20.0-cp39-cp39-manylinux_2_28_x86_64.whl", False),
])
def test_wheel_choice_without_pip(name, fits):
    assert gpu._wheel_fits(name) == fits
