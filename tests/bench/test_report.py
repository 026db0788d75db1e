"""bench/report.py renders one run's results into RESULTS.md."""

import json

from bench import report


def _entry(result=None, error=None, load=(3.5, 2.0, 1.0)):
    entry = {"seconds": 12.0, "load_average_start": list(load), "load_average_end": [1.5, 1, 1]}
    if error:
        entry["error"] = error
    else:
        entry["result"] = result
    return entry


def _twin_rows(name):
    return [{"name": name, "xla": False, "ours_ms": 2.0, "keras_ms": 1.0, "ratio": 2.0},
            {"name": name, "xla": True, "ours_ms": 1.0, "keras_ms": 1.0, "ratio": 1.0}]


def _gpu_result(platform, kind, ratio):
    sizes = {"layers": 2, "heads": 4, "key_dim": 32, "ff": 512, "batch": 4, "seq": 64,
             "matmul_n": 1024}
    return {"device": {"platform": platform, "kind": kind}, "jax": "0.10.2", "keras": "3.15.1",
            "backend": "jax", "python": "3.11.7", "date": "2026-01-02T03:04:05+0000",
            "sizes": sizes, "step_flops": 7e8, "peak_bf16_tflops": 900.0,
            "peak_fp32_tflops": 400.0, "matmul_precision": "default",
            "rows": [{"precision": p, "ours_ms": 2.0 * ratio, "keras_ms": 2.0, "ratio": ratio,
                      "ours_tflops": 0.35 / ratio, "keras_tflops": 0.35,
                      "ours_fraction_of_bf16_peak": 0.4, "keras_fraction_of_bf16_peak": 0.5}
                     for p in ("float32", "bfloat16")],
            "tests": {"tests": 107, "failures": 0, "errors": 0, "skipped": 2, "time": 90.0}}


def _results():
    info = {"cpu": "Test CPU 9000", "cores": 2, "tensorflow": "2.21.0", "python": "3.11.7",
            "date": "2026-01-02T03:04:05+00:00", "load_average": [0.5, 0.4, 0.3]}
    training_row = {
        "case": "classification", "example": "a digit", "batch": 64,
        "no_xla_examples_per_sec": 1500.0, "xla_examples_per_sec": 750.0, "xla_ratio": 0.5,
        "cpu_default_xla": False, "one_per_call_examples_per_sec": 1400.0, "steps_per_call_gain": 1500 / 1400,
        "load_average_start": [1.0, 1, 1], "load_average_end": [2.0, 1, 1],
        "rounds": 5, "round_seconds": 1.0, "peak_gflops": 60.0,
        "peak_gflops_per_round": [50.0, 60.0, 120.0],
        "flops": {"parameters": 1000, "forward_per_example": 2e6,
                  "training_per_example": 6e6}}
    return {
        "started": info, "finished": {**info, "load_average": [0.7, 0.5, 0.3]},
        "wall_seconds": 600.0,
        "sections": {
            "machine": _entry({"peak": {"n": 4096, "best_gflops": 90.0, "median_gflops": 80.0}}),
            "training": _entry({"rows": [training_row,
                                         {"case": "detection", "error": "out of memory"}]}),
            "optimizers": _entry({"target_ratio": 1.1, "rows": _twin_rows("Adam / Adam")}),
            "layers": _entry(error="ImportError: no module"),
            "detection": _entry({"nms": [{"name": "nms", "ours_ms": 3.0, "keras_ms": 1.5,
                                          "ratio": 2.0}],
                                 "keras_cv": None, "keras_cv_skipped": "keras-cv is not installed"}),
            "data": _entry({"rows": [
                {"case": "detection: COCO", "app": "detection", "unit": "images", "size": size,
                 "cache": cache, "startup_seconds": startup, "examples_per_sec": speed,
                 "peak_rss_mib": rss}
                for size, cache, startup, speed, rss in (
                    (1000, "none", 3.0, 90.0, 1000.0), (1000, "memory", 4.0, 100.0, 1100.0),
                    (8000, "memory", 9.5, 100.0, 1500.0), (8000, "none", 3.5, 95.0, 1010.0))]}),
            "gpu": _entry(_gpu_result("cpu", "cpu", 1.25)),
            "machine_end": _entry({"peak": {"n": 4096, "best_gflops": 100.0,
                                            "median_gflops": 95.0}}),
        }}


def test_every_figure_and_failure_reaches_the_markdown(tmp_path):
    path = report.write(_results(), str(tmp_path / "RESULTS.md"), str(tmp_path / "none.json"))
    text = open(path).read()
    assert "Test CPU 9000" in text and "2.21.0" in text and "0.5 / 0.4 / 0.3" in text
    assert "GPU: no TensorFlow figure" in text
    # No GPU run recorded: the section says so and shows this run's CPU figures.
    gpu_section = text.split("## GPU")[1].split("## Sections")[0]
    assert "No GPU has run bench/gpu.sh yet" in gpu_section
    assert "| float32 | 2.50 | 2.00 | 1.250 |" in gpu_section
    assert "105 passed, 0 failed, 2 skipped in 90 s" in gpu_section
    # the best peak of the run: start 90, end 100, within the training rounds 120
    assert "**120.0 GFLOP/s**" in text
    assert ("| classification | a digit | 64 | 1500.0 | 750.0 | 0.50 | no XLA | 1400.0 | 1.07 "
            "| 1.0 → 2.0 |") in text
    # 6 MFLOP x 1500 examples/s = 9 GFLOP/s = 7.5% of 120 and 15% of the rounds'
    # median 60; with XLA 4.5 GFLOP/s
    assert "| 9.0 / 4.5 | 7.5% / 3.8% | 60.0: 15.0% / 7.5% |" in text
    assert "failed: `out of memory`" in text
    assert "**Layers against their Keras twins failed**: `ImportError: no module`" in text
    assert "| Adam / Adam | 2.000 | 1.000 | 2.00 | 1.000 | 1.000 | 1.00 |" in text
    assert "over it: Adam / Adam." in text
    assert "KerasCV YOLOV8: not measured: keras-cv is not installed." in text
    assert "the whole run took 10.0 min" in text
    assert "the median of 5 rounds of about 1 s" in text
    assert "| detection: COCO | 8,000 images | none | 3.5 | 95 | 1010 |" in text
    assert ("- detection: COCO, small to large: cache=none: peak RSS +10 MiB, start-up +0.5 s; "
            "cache=memory: peak RSS +400 MiB, start-up +5.5 s; streaming speed / in-memory "
            "speed at the large size 0.95.") in text


def test_peak_is_none_without_a_machine_section():
    assert report.peak_gflops({"training": _entry({"rows": []})}) is None
    assert report.peak_gflops({}) is None


def test_a_recorded_gpu_run_leads_the_gpu_section(tmp_path):
    recorded = tmp_path / "gpu.json"
    recorded.write_text(json.dumps(_gpu_result("gpu", "NVIDIA H100", 0.9)))
    text = open(report.write(_results(), str(tmp_path / "RESULTS.md"), str(recorded))).read()
    gpu_section = text.split("## GPU")[1].split("## Sections")[0]
    assert "No GPU has run" not in gpu_section
    on_gpu, on_cpu = gpu_section.split("The same script on this run's CPU")
    assert "Device: NVIDIA H100 (gpu)" in on_gpu and "| float32 | 1.80 | 2.00 | 0.900 |" in on_gpu
    assert "Device: cpu (cpu)" in on_cpu and "| float32 | 2.50 | 2.00 | 1.250 |" in on_cpu


def test_a_recorded_cpu_run_is_not_shown_as_a_gpu_run(tmp_path):
    recorded = tmp_path / "gpu.json"
    recorded.write_text(json.dumps(_gpu_result("cpu", "cpu", 0.5)))
    results = _results()
    results["sections"]["gpu"] = _entry(error="CalledProcessError: bench/gpu.sh exit status 1")
    text = open(report.write(results, str(tmp_path / "RESULTS.md"), str(recorded))).read()
    gpu_section = text.split("## GPU")[1].split("## Sections")[0]
    assert "No GPU has run bench/gpu.sh yet" in gpu_section and "0.500" not in gpu_section
    assert "**bench/gpu.sh on this CPU failed**" in gpu_section
