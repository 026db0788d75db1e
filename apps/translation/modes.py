"""The translation app's own mode (the core runs train, eval, export, predict).

    --mode=error_analysis   the course's beam-search error analysis of the test
                            split: for each wrong translation y_hat of y*, is
                            the search to blame (the model scores y* higher) or
                            the model (it prefers y_hat)?
"""

import numpy as np
import tensorflow as tf


def error_analysis(task, run):
    """Prints each wrong test translation (up to config.eval.shown_errors) with
    both scores and who is to blame, then the counts; returns them. The test
    split is analysed batch by batch; only the shown errors are kept."""
    trainer = task.make_trainer(run.workdir)
    trainer.restore(required=True)
    c = task.config
    examples = errors = search_errors = 0
    shown = []
    for a in task.analysed_batches(trainer.model, trainer.data.test):
        examples += len(a["hyps"])
        errors += int(a["wrong"].sum())
        search_errors += int(a["search_error"].sum())
        wrong = np.flatnonzero(a["wrong"])[:max(0, c.eval.shown_errors - len(shown))]
        sources = task.source_vocab.tf_decode(tf.constant(a["source_ids"][wrong])).numpy()
        for i, source in zip(wrong, sources, strict=True):
            fault = "search" if a["search_error"][i] else "model"
            shown.append(f"  {source.decode('utf-8')!r}: y_hat={a['hyps'][i]!r} "
                         f"({a['hyp_score'][i]:.4f}) y*={a['refs'][i]!r} "
                         f"({a['ref_score'][i]:.4f}) -> {fault}")
    print(f"Error analysis of {examples} test translations (beam {c.decode.beam_size}, "
          f"alpha {c.decode.alpha}): {errors} wrong")
    print("score = (1 / T_y^alpha) sum log P(y_t | x, y_<t); search error when "
          "score(y*) > score(y_hat)")
    for line in shown:
        print(line)
    share = search_errors / errors if errors else 0.0
    print(f"search errors: {search_errors}, model errors: {errors - search_errors}, "
          f"search share {share:.3f}")
    return {"test_examples": examples, "errors": errors,
            "search_errors": search_errors, "model_errors": errors - search_errors,
            "search_error_share": share}
