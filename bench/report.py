"""bench/RESULTS.md from one `make bench` run's results (bench/__main__.py)."""

import json
import os

from bench import gpu

RESULTS_MD = os.path.join(os.path.dirname(__file__), "RESULTS.md")
#: bench/gpu.sh's gpu.json from a GPU host, committed (the run that fills the GPU section)
GPU_RUN_JSON = os.path.join(os.path.dirname(__file__), "gpu.json")

GPU_LINE = ("GPU: no TensorFlow figure. The GPU hosts this project can use have JAX but no "
            "TensorFlow (and no network to install it), so the training, `xla` + "
            "`mixed_precision` and peak figures are the CPU's; the library itself is "
            "measured under Keras's JAX backend in the GPU section.")


def _load(entry):
    """'a -> b': the 1-minute load average at the start and end of a measurement."""
    start, end = entry.get("load_average_start"), entry.get("load_average_end")
    if not start or not end:
        return "?"
    return f"{start[0]:.1f} → {end[0]:.1f}"


def _num(value, fmt=".1f"):
    return "n/a" if value is None else format(value, fmt)


def _table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _failed(name, entry):
    return [f"**{name} failed**: `{entry['error']}`", ""]


def peak_gflops(sections):
    """The best float32 matmul GFLOP/s of the run (start, end and within the
    training rounds of the FLOP-counted models), or None."""
    peaks = [s["result"]["peak"]["best_gflops"] for k, s in sections.items()
             if k.startswith("machine") and "result" in s]
    training = sections.get("training", {}).get("result", {"rows": []})
    peaks += [p for r in training["rows"] for p in r.get("peak_gflops_per_round", [])]
    return max(peaks) if peaks else None


def _machine(results):
    info, end = results["started"], results["finished"]
    lines = ["## Machine", ""]
    lines += _table(["CPU", "cores", "TensorFlow", "Python", "date",
                     "load average at start (1/5/15 min)", "at end"],
                    [[info["cpu"], info["cores"], info["tensorflow"], info["python"],
                      info["date"], " / ".join(map(str, info["load_average"] or [])),
                      " / ".join(map(str, end["load_average"] or []))]])
    lines += ["", GPU_LINE, "",
              "The load average (1-minute) is given beside each figure: on this 2-core "
              "machine a load above 2 means that other jobs shared the CPU, and the "
              "figures are then lower and noisier than a quiet machine's. Each comparison "
              "(XLA or not, ours or the peer's) alternates its two sides round by round, so "
              "that drift in the load hits both alike, and reports medians.", ""]
    return lines


def _peak(sections):
    lines = ["## The machine's limit", ""]
    rows = []
    for key, when in (("machine", "start"), ("machine_end", "end")):
        entry = sections.get(key)
        if entry is None:
            continue
        if "error" in entry:
            lines += _failed(f"peak at the {when}", entry)
            continue
        p = entry["result"]["peak"]
        rows.append([when, f"{p['n']} x {p['n']}", f"{p['best_gflops']:.1f}",
                     f"{p['median_gflops']:.1f}", _load(entry)])
    training = sections.get("training", {}).get("result", {"rows": []})
    for r in training["rows"]:
        if r.get("peak_gflops_per_round"):
            rows.append([f"between the {r['case']} training rounds", "4096 x 4096",
                         f"{max(r['peak_gflops_per_round']):.1f}", f"{r['peak_gflops']:.1f}",
                         _load(r)])
    lines += _table(["measured at", "float32 matmul", "best GFLOP/s", "median GFLOP/s",
                     "load"], rows)
    peak = peak_gflops(sections)
    lines += ["", "What is measured: `tf.linalg.matmul` of two n x n float32 matrices, "
              "2 n³ FLOPs each, a few products per timed `tf.function` call (bench/machine.py). "
              f"The practical peak used below is the best of the run: **{_num(peak)} GFLOP/s**.",
              ""]
    return lines


def _cpu_default(row):
    """The side a CPU run takes with config.xla unset (rows from before it was recorded: '')."""
    if "cpu_default_xla" not in row:
        return ""
    return "XLA" if row["cpu_default_xla"] else "no XLA"


def _training(entry, peak):
    lines = ["## Training throughput, every app", ""]
    if "error" in entry:
        return lines + _failed("training", entry)
    rows, flop_rows = [], []
    timed = [r for r in entry["result"]["rows"] if "error" not in r]
    rounds = (f"{timed[0]['rounds']} rounds of about {timed[0]['round_seconds']:g} s"
              if timed else "rounds")
    for r in entry["result"]["rows"]:
        if "error" in r:
            rows.append([r["case"], r.get("example", ""), r.get("batch", ""),
                         f"failed: `{r['error']}`", "", "", "", "", "", ""])
            continue
        xla = r.get("xla_examples_per_sec")
        rows.append([r["case"], r["example"], r["batch"],
                     f"{r['no_xla_examples_per_sec']:.1f}",
                     _num(xla) if xla else f"n/a: {r['no_xla_reason']}",
                     _num(r.get("xla_ratio"), ".2f"),
                     _cpu_default(r),
                     f"{r['one_per_call_examples_per_sec']:.1f}",
                     f"{r['steps_per_call_gain']:.2f}", _load(r)])
        if "flops" in r:
            flop_rows.append(_flops_row(r, peak))
    lines += _table(["app (default config)", "one example is", "batch", "examples/s, no XLA",
                     "examples/s, XLA", "XLA / no XLA", "default on a CPU",
                     "no XLA, one step per call (before)",
                     "after / before", "load"], rows)
    lines += ["", "What is measured (bench/training.py): the default config's `Trainer` "
              "train steps on the real input pipeline (the app's augmentation in tf.data), "
              "called as `Trainer.train` calls them for metrics.json's examples_per_sec: "
              "several steps per call, up to the next log, checkpoint or epoch boundary, "
              "the losses fetched to the host after each call; examples/s = steps x global "
              f"batch / seconds, the median of {rounds} after a warm-up "
              "(compilation not counted). \"One step per call (before)\" is the same trainer "
              "without XLA called as `Trainer.train` called it before this report's fix "
              "(one call per step, the loss fetched and the step counter set after each). "
              "The trainers with and without XLA run in two processes, each set up as the "
              "app's entrypoint sets it up (op determinism without XLA), taking turns round "
              "by round. The style-transfer row is the fast stylizer's trainer "
              "(`--mode=train_fast`); the default `--mode=train` optimises one image "
              "and has no input pipeline. \"Default on a CPU\" is what a run does with "
              "config.xla unset on a machine without GPU or TPU (the app config's "
              "`xla_on_cpu`, chosen from this table; with a GPU or TPU the default is XLA).", ""]
    lines += ["## Training FLOPs and the share of the machine's peak", ""]
    lines += _table(["model", "parameters", "forward MFLOP / example",
                     "training MFLOP / example", "examples/s (no XLA / XLA)",
                     "achieved GFLOP/s (no XLA / XLA)", "share of the run's peak",
                     "peak in the same rounds (GFLOP/s, median): share"], flop_rows)
    lines += ["", "What is measured (bench/flops.py): the forward pass of a training step "
              "(model in training mode and the task's loss, on one real batch) is traced "
              "and its FLOPs counted by TensorFlow's profiler (`tf.compat.v1.profiler`, "
              "float_operation; einsums it has no formula for are added by 2 x the product "
              "of their index sizes); training FLOPs = 3 x forward (the backward pass costs "
              "about two forward passes); achieved GFLOP/s = training FLOPs per example x "
              "examples/s; share = achieved / the run's peak above, and / the median of "
              "one matmul round run between the training rounds of that model (the same "
              "load). tests/bench/test_flops.py checks the count against the analytic "
              "formulas of a Conv2D, a Dense layer and a matmul.",
              ""]
    return lines


def _flops_row(r, peak):
    f = r["flops"]
    gflops = [f["training_per_example"] * r[k] / 1e9 if r.get(k) else None
              for k in ("no_xla_examples_per_sec", "xla_examples_per_sec")]

    def shares(of):
        return " / ".join("n/a" if g is None or not of else f"{g / of:.1%}" for g in gflops)

    return [r["case"], f"{f['parameters']:,}", f"{f['forward_per_example'] / 1e6:.2f}",
            f"{f['training_per_example'] / 1e6:.2f}",
            f"{_num(r.get('no_xla_examples_per_sec'))} / {_num(r.get('xla_examples_per_sec'))}",
            f"{_num(gflops[0])} / {_num(gflops[1])}", shares(peak),
            f"{_num(r.get('peak_gflops'))}: {shares(r.get('peak_gflops'))}"]


def _twins(title, entry, what):
    lines = [f"### {title}", ""]
    if "error" in entry:
        return lines + _failed(title, entry)
    result = entry["result"]
    target = result.get("target_ratio")
    by_name = {}
    for row in result["rows"]:
        by_name.setdefault(row["name"], {})[bool(row.get("xla"))] = row
    rows = []
    for name, sides in by_name.items():
        cells = [name]
        for xla in (False, True):
            row = sides.get(xla)
            cells += ([f"{row['ours_ms']:.3f}", f"{row['keras_ms']:.3f}", f"{row['ratio']:.2f}"]
                      if row else ["", "", ""])
        rows.append(cells)
    lines += _table(["piece", "ours ms", "reference ms", "ratio", "ours ms (XLA)",
                     "reference ms (XLA)", "ratio (XLA)"], rows)
    verdict = ""
    if target:
        slow = [r["name"] + (" (XLA)" if r.get("xla") else "") for r in result["rows"]
                if r["ratio"] > target]
        verdict = (f" Target: ratio ≤ {target}; " + ("all within." if not slow else
                                                    "over it: " + ", ".join(slow) + "."))
    lines += ["", f"What is measured: {what}; ratio = ours / reference, medians of "
              f"alternating rounds; load {_load(entry)}.{verdict}", ""]
    return lines


def _detection(entry):
    lines = ["### Detection: NMS against tf.image, and KerasCV YOLOV8", ""]
    if "error" in entry:
        return lines + _failed("detection", entry)
    result = entry["result"]
    rows = [[r["name"], f"{r['ours_ms']:.3f}", f"{r['keras_ms']:.3f}", f"{r['ratio']:.2f}"]
            for r in result["nms"]]
    lines += _table(["NMS", "ours ms", "tf.image ms", "ratio"], rows)
    lines += ["", "What is measured: our NMS (`apps/detection/nms.py`) against "
              "`tf.image.non_max_suppression` / `combined_non_max_suppression` on the same "
              f"boxes, same results checked first; load {_load(entry)}.", ""]
    cv = result.get("keras_cv")
    if cv is None:
        lines += [f"KerasCV YOLOV8: not measured: {result.get('keras_cv_skipped')}.", ""]
    else:
        rows = [[name, f"{row['map50']:.3f}", f"{row['map']:.3f}",
                 f"{row['examples_per_sec']:.1f}", row["steps"], f"{row['params']:,}"]
                for name, row in (("ours (YOLO)", cv["ours"]),
                                  ("KerasCV YOLOV8", cv["keras_cv_yolov8"]))]
        lines += _table(["detector", "test mAP@0.5", "mAP@[.5:.95]", "examples/s", "steps",
                         "parameters"], rows)
        ratio = cv["ours"]["examples_per_sec"] / cv["keras_cv_yolov8"]["examples_per_sec"]
        lines += ["", f"Both trained for {cv['seconds']:.0f} s of wall time on the same "
                  f"augmented stream of the default data; examples/s ours / KerasCV = "
                  f"{ratio:.2f}.", ""]
    return lines


EMBEDDINGS_TITLE = "### Embeddings: word2vec against gensim"


def _embeddings(entry):
    lines = [EMBEDDINGS_TITLE, ""]
    if "error" in entry:
        return lines + _failed("embeddings", entry)
    methods = entry["result"].get("methods")
    if methods is None:  # a run from before CBOW was compared too
        methods = {"skipgram": entry["result"]}
    for method, result in methods.items():
        mean = result["mean"]
        ours, gensim = mean["ours"], mean["gensim"]
        rows = []
        for key, fmt in (("words_per_sec", ".0f"), ("words_per_cpu_sec", ".0f"),
                         ("train_seconds", ".1f"), ("ws353_spearman", ".3f"),
                         ("simlex999_spearman", ".3f"), ("analogy_accuracy", ".3f"),
                         ("analogy_coverage", ".3f"), ("load", ".1f")):
            if key not in ours:
                continue
            ratio = key.startswith("words_per")
            rows.append([key, format(ours[key], fmt), format(gensim[key], fmt),
                         f"{ours[key] / gensim[key]:.2f}" if ratio else
                         f"{ours[key] - gensim[key]:+.3f}"
                         if key not in ("train_seconds", "load") else ""])
        lines += [f"**{method}**: {result['config']}.", ""]
        lines += _table(["figure (mean over seeds)", "ours", "gensim",
                         "ours / gensim or ours - gensim"], rows)
        if "goal_met" in mean:
            lines += ["", f"Goal (words/s >= 1.0x gensim's, WordSim-353 at most 0.02 below "
                      f"gensim's over the seeds): **{'met' if mean['goal_met'] else 'not met'}**"
                      f" (words/s {mean['speed_ratio']:.2f}x, words per CPU-second "
                      f"{mean['cpu_ratio']:.2f}x, WordSim-353 {mean['ws353_difference']:+.3f}).",
                      ""]
        else:
            lines.append("")
    lines += ["What is measured: both on the same sentences and vocabulary, scored by the "
              "same code, seeds alternating which side runs first; words/s = in-vocabulary "
              "corpus words x epochs / training seconds (ours: the trainer's train-step calls "
              "after the first, which compiles; gensim: Word2Vec.train with 2 workers); words "
              "per CPU-second over the same windows (the process's user + system time), which "
              "a shared CPU's load changes far less; load = the 1-minute load average around "
              f"each run (mean); section load {_load(entry)}. Under load the words/s ratio "
              "also reflects how much of the CPU each side's threads win; on a quiet machine "
              "each side's words/s tends to its words per CPU-second times the cores it keeps "
              "busy (gensim's 2 workers: about 2), so the CPU-second ratio is the better "
              "guide to a quiet machine's.", ""]
    return lines


def _data(entry):
    lines = ["## Data larger than memory: data sets on disk, read as training goes", ""]
    if "error" in entry:
        return lines + _failed("data", entry)
    rows = entry["result"]["rows"]
    lines += _table(["data set", "size", "config.data.cache", "start-up to the first step (s)",
                     "examples/s", "peak RSS (MiB)"],
                    [[r["case"], f"{r['size']:,} {r['unit']}", r["cache"],
                      f"{r['startup_seconds']:.1f}", f"{r['examples_per_sec']:.0f}",
                      f"{r['peak_rss_mib']:.0f}"] for r in rows])
    growth = []
    for case in dict.fromkeys(r["case"] for r in rows):
        by = {(r["size"], r["cache"]): r for r in rows if r["case"] == case}
        small, large = sorted({size for size, _ in by})
        parts = [f"cache={c}: peak RSS {by[large, c]['peak_rss_mib'] - by[small, c]['peak_rss_mib']:+.0f} MiB, "
                 f"start-up {by[large, c]['startup_seconds'] - by[small, c]['startup_seconds']:+.1f} s"
                 for c in dict.fromkeys(c for _, c in by) if (small, c) in by and (large, c) in by]
        if (large, "memory") in by:
            parts.append(f"streaming speed / in-memory speed at the large size "
                         f"{by[large, 'none']['examples_per_sec'] / by[large, 'memory']['examples_per_sec']:.2f}")
        growth.append(f"- {case}, small to large: " + "; ".join(parts) + ".")
    lines += ["", *growth, "", f"bench/data.py; load {_load(entry)}.", ""]
    return lines


def _gpu(entry, gpu_run_json):
    """The GPU section: a GPU host's recorded run (bench/gpu.json) if there is one,
    and this run's bench/gpu.sh on the CPU."""
    lines = ["## GPU", ""]
    recorded = None
    if os.path.exists(gpu_run_json):
        with open(gpu_run_json) as f:
            recorded = json.load(f)
    if recorded is not None and recorded["device"]["platform"] != "cpu":
        lines += ["From `bash bench/gpu.sh` on a GPU host (bench/gpu.json; bench/gpu.py says "
                  "what it measures):", "", gpu.markdown(recorded), ""]
        title = "The same script on this run's CPU, for comparison:"
    else:
        lines += ["**No GPU has run bench/gpu.sh yet, so these figures are from this "
                  "machine's CPU.** They come from `bench/gpu.sh`, the one-call script for a "
                  "GPU host with JAX and no TensorFlow (bench/gpu.py says what it measures), "
                  "run in this `make bench` under Keras's JAX backend with the small sizes it "
                  "picks without a GPU. A CPU's bfloat16 matmul is slower than its float32 "
                  "one, so the shares of the \"bf16 peak\" say little here; on a GPU they are "
                  "the point. To fill this section: `bash bench/gpu.sh fetch` here, then "
                  "`bash bench/gpu.sh OUTDIR` on the GPU host, and commit its OUTDIR/gpu.json "
                  "as bench/gpu.json; the next `make bench` shows it.", ""]
        title = None
    if entry is None:
        return lines
    if "error" in entry:
        return lines + _failed("bench/gpu.sh on this CPU", entry)
    if title:
        lines += [title, ""]
    return lines + [gpu.markdown(entry["result"]), "", f"Load {_load(entry)}.", ""]


def write(results, path=RESULTS_MD, gpu_run_json=GPU_RUN_JSON):
    """Writes RESULTS.md from `results` (bench/__main__.py's summary); returns its path."""
    sections = results["sections"]
    peak = peak_gflops(sections)
    lines = ["# Benchmark results", "",
             f"Written by `make bench` (`python -m bench`) on {results['started']['date']}; "
             f"the whole run took {results['wall_seconds'] / 60:.1f} min. The JSON behind "
             "every figure is in bench/results/ (not committed); run `make bench` again to "
             "refresh this file.", ""]
    lines += _machine(results)
    lines += _peak(sections)
    if "training" in sections:
        lines += _training(sections["training"], peak)
    lines += ["## Peers", ""]
    twins = (("optimizers", "Optimizers against their Keras twins",
              "a full training step (forward, backward, apply) of a small MLP with each "
              "optimizer (bench/optimizers.py)"),
             ("layers", "Layers against their Keras twins",
              "forward + backward of each layer and of its Keras twin with copied weights "
              "(bench/layers.py)"),
             ("losses", "Losses against the nearest TF/Keras computation",
              "forward + backward of each loss ('~': not the same formula; bench/losses.py)"))
    for key, title, what in twins:
        if key in sections:
            lines += _twins(title, sections[key], what)
    if "detection" in sections:
        lines += _detection(sections["detection"])
    if "embeddings" in sections:
        lines += _embeddings(sections["embeddings"])
    if "data" in sections:
        lines += _data(sections["data"])
    lines += _gpu(sections.get("gpu"), gpu_run_json)
    lines += ["## Sections", ""]
    lines += _table(["section", "seconds", "load"],
                    [[name, f"{s['seconds']:.0f}", _load(s)] for name, s in sections.items()])
    lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path
