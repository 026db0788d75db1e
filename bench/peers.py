"""The peers the app issues named, for `make bench` (bench/__main__.py).

* detection: our NMS against tf.image's (bench.detection.bench_nms) and, where
  keras-cv is installed, KerasCV's YOLOV8Detector trained for the same wall
  time as ours (bench.detection.bench_keras_cv; DLSUITE_BENCH_SECONDS each,
  60 by default here so that the whole bench stays short). Without keras-cv
  the row says so instead of failing.
* embeddings: word2vec against gensim's Word2Vec (bench.embeddings;
  EMBEDDINGS_BENCH_SEEDS seeds, 3 by default).

The training throughput of the detector with and without XLA is in
bench.training with every other app's.
"""

import json
import os

from bench.common import write_json

KERAS_CV_SECONDS = float(os.environ.get("DLSUITE_BENCH_SECONDS", "60"))


def detection(seconds=KERAS_CV_SECONDS):
    from bench import detection as detection_bench

    result = {"nms": detection_bench.bench_nms(), "keras_cv": None, "keras_cv_skipped": None}
    try:
        import keras_cv  # noqa: F401
    except Exception as e:  # noqa: BLE001 - not installed, or broken with this Keras
        result["keras_cv_skipped"] = (
            f"keras-cv is not installed here (import keras_cv: {str(e).splitlines()[0]}); "
            "`pip install keras-cv==0.9.0` adds the YOLOV8 comparison")
        print(f"\nKerasCV YOLOV8 comparison skipped: {result['keras_cv_skipped']}")
    else:
        result["keras_cv"] = detection_bench.bench_keras_cv(seconds)
    write_json("detection.json", result)
    return result


def embeddings():
    from bench import embeddings as embeddings_bench

    embeddings_bench.main()
    path = os.path.join(os.path.dirname(__file__), "results", "embeddings.json")
    with open(path) as f:
        return json.load(f)
