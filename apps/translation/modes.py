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
    both scores and who is to blame, then the counts; returns them."""
    trainer = task.make_trainer(run.workdir)
    trainer.restore(required=True)
    test = trainer.data.test
    a = task.analyse(trainer.model, test)
    wrong = np.flatnonzero(a["wrong"])
    search = set(np.flatnonzero(a["search_error"]))
    sources = [s.decode("utf-8") for s in
               task.source_vocab.tf_decode(tf.constant(test.inputs[0])).numpy()]
    c = task.config
    print(f"Error analysis of {len(a['hyps'])} test translations (beam {c.decode.beam_size}, "
          f"alpha {c.decode.alpha}): {len(wrong)} wrong")
    print("score = (1 / T_y^alpha) sum log P(y_t | x, y_<t); search error when "
          "score(y*) > score(y_hat)")
    for i in wrong[:c.eval.shown_errors]:
        fault = "search" if i in search else "model"
        print(f"  {sources[i]!r}: y_hat={a['hyps'][i]!r} ({a['hyp_score'][i]:.4f}) "
              f"y*={a['refs'][i]!r} ({a['ref_score'][i]:.4f}) -> {fault}")
    share = len(search) / len(wrong) if len(wrong) else 0.0
    print(f"search errors: {len(search)}, model errors: {len(wrong) - len(search)}, "
          f"search share {share:.3f}")
    return {"test_examples": len(a["hyps"]), "errors": len(wrong),
            "search_errors": len(search), "model_errors": len(wrong) - len(search),
            "search_error_share": share}
