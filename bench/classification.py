"""Training throughput of the classification app, with and without XLA.

Builds the default config's trainer twice (xla false / true) and times its
compiled train step on the real input pipeline, alternating rounds between
the two after a warm-up, as `make bench` does for the library.
"""

import statistics
import tempfile
import time

from apps.classification.task import ClassificationTask
from apps.core.trainer import Trainer
from bench.common import write_json
from configs.classification import get_config

ROUNDS, STEPS, WARMUP = 7, 20, 10


def _runner(xla, workdir):
    config = get_config()
    config.xla = xla
    trainer = Trainer(ClassificationTask(config), workdir)
    step = trainer.train_step_function()
    iterator = iter(trainer.train_dataset(0))
    for _ in range(WARMUP):
        float(step(iterator))

    def run():
        start = time.perf_counter()
        for _ in range(STEPS):
            loss = step(iterator)
        float(loss)
        return STEPS * config.train.batch_size / (time.perf_counter() - start)

    return run


def main():
    with tempfile.TemporaryDirectory() as tmp:
        runners = {xla: _runner(xla, f"{tmp}/{xla}") for xla in (False, True)}
        speeds = {False: [], True: []}
        for r in range(ROUNDS):
            for xla in ((False, True) if r % 2 == 0 else (True, False)):
                speeds[xla].append(runners[xla]())
    rows = {("xla" if xla else "no_xla"): statistics.median(v) for xla, v in speeds.items()}
    print("\nclassification (default config: ResNet, digits 16x16, batch 64)")
    print(f"{'':<10}{'examples/s':>12}")
    for name, value in rows.items():
        print(f"{name:<10}{value:>12.0f}")
    print(f"xla / no_xla: {rows['xla'] / rows['no_xla']:.2f}x")
    write_json("classification.json", rows)


if __name__ == "__main__":
    main()
