"""`make bench`: every benchmark in one run; writes bench/RESULTS.md and bench/results/*.json.

    python -m bench                 # everything, then RESULTS.md
    python -m bench SECTION ...     # only these sections (their JSON; RESULTS.md untouched)

Sections run one after the other, each in its own Python process (so that
process-wide TensorFlow state, e.g. op determinism, cannot leak from one to
the next, and a failing section is reported instead of ending the run). The
machine's peak (bench.machine) is measured at the start and at the end; each
section notes its wall time and the load average around it. A failed section
is reported in RESULTS.md and makes the exit status 1.
"""

import json
import os
import subprocess
import sys
import time

from bench import machine, report
from bench.common import write_json

#: section -> (what it measures, the code its process runs)
SECTIONS = {
    "machine": ("the CPU's practical peak (float32 matmul)",
                "from bench import machine; r = machine.main()"),
    "training": ("every app's training examples/s, without and with XLA; training FLOPs",
                 "from bench import training; r = {'rows': training.main()}"),
    "optimizers": ("our optimizers vs their Keras twins",
                   "from bench import optimizers; r = optimizers.main()"),
    "layers": ("our layers vs their Keras twins",
               "from bench import layers; r = layers.main()"),
    "losses": ("our losses vs the nearest TF/Keras computations",
               "from bench import losses; r = losses.main()"),
    "detection": ("our NMS vs tf.image; KerasCV YOLOV8 trained for the same time",
                  "from bench import peers; r = peers.detection()"),
    "embeddings": ("word2vec vs gensim (speed and quality)",
                   "from bench import peers; r = peers.embeddings()"),
    "data": ("image folders, COCO JSON, text of 1x vs 8x size: start-up, speed, peak RSS",
             "from bench import data; r = data.main()"),
    "gpu": ("bench/gpu.sh under Keras's JAX backend on this machine (a GPU host's run "
            "is bench/gpu.json)", "from bench import gpu; r = gpu.run_script_here()"),
}


def run_section(name):
    """Runs one section in a child Python; returns {seconds, load, result | error}."""
    out = os.path.join(os.path.dirname(__file__), "results", f".{name}.section.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    code = (f"import json; {SECTIONS[name][1]}\n"
            f"json.dump(r, open({out!r}, 'w'), default=str)")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    load_start, start = machine.load_average(), time.perf_counter()
    print(f"\n=== {name}: {SECTIONS[name][0]}", flush=True)
    proc = subprocess.run([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE,
                          text=True)
    entry = {"seconds": time.perf_counter() - start, "load_average_start": load_start,
             "load_average_end": machine.load_average()}
    if proc.returncode == 0 and os.path.exists(out):
        with open(out) as f:
            entry["result"] = json.load(f)
        os.remove(out)
    else:
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        entry["error"] = (lines[-1] if lines else f"exit status {proc.returncode}")[:300]
        print(f"{name} failed: {entry['error']}", file=sys.stderr)
    print(f"=== {name}: {entry['seconds']:.0f} s", flush=True)
    return entry


def main(argv):
    names = argv or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        print(f"error: unknown bench section(s) {', '.join(unknown)}; expected "
              f"{', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    info = machine.describe()
    sections = {}
    for name in names:
        sections[name] = run_section(name)
    if not argv:  # the peak again at the end, under the end's load
        sections["machine_end"] = run_section("machine")
    results = {"started": info, "finished": machine.describe(),
               "wall_seconds": time.perf_counter() - started, "sections": sections}
    print(f"\nwrote {write_json('summary.json' if not argv else 'summary_partial.json', results)}")
    if not argv:
        print(f"wrote {report.write(results)}")
    print(f"bench took {results['wall_seconds'] / 60:.1f} min")
    return 1 if any("error" in s for s in sections.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
