"""The style-transfer cost J(G) of the course, from `layers.losses`.

    J(G) = alpha * J_content(C, G) + beta * J_style(S, G) + tv_weight * TV(G)

    J_content = content_cost(a_C, a_G)                 at config.cost.content_layer
              = 1 / (4 n_H n_W n_C) * sum (a_C - a_G)^2
    J_style   = sum_l lambda_l * layer_style_cost(a_S[l], a_G[l])
              = sum_l lambda_l / (4 n_C^2 (n_H n_W)^2) * sum (Gram(a_S[l]) - Gram(a_G[l]))^2
                                                       over config.cost.style_layers
    TV(G)     = total_variation(G, config.cost.tv_kind)

The formulas (and their NumPy references and gradient checks) live in
layers/losses.py; every term is a sum over the batch, so for a batch of
generated images J is the sum of their costs (the style target, a batch of
one, is shared by all).
"""

import tensorflow as tf

from layers import losses


class Costs:
    """J and its terms for one extractor and one config.cost."""

    def __init__(self, extractor, cost_config):
        self.extractor = extractor
        self.content_layer = cost_config.content_layer
        self.style_weights = {name: float(w) for name, w in cost_config.style_layers}
        self.alpha = float(cost_config.alpha)
        self.beta = float(cost_config.beta)
        self.tv_weight = float(cost_config.tv_weight)
        self.tv_kind = cost_config.tv_kind

    @staticmethod
    def layer_names(cost_config):
        names = [name for name, _ in cost_config.style_layers]
        return names + [n for n in [cost_config.content_layer] if n not in names]

    def content_features(self, images):
        return self.extractor(images)[self.content_layer]

    def style_features(self, images):
        features = self.extractor(images)
        return {name: features[name] for name in self.style_weights}

    def __call__(self, generated, content_target, style_target):
        """The terms of J for `generated` (batch, H, W, 3) in [0, 1].

        content_target: the content layer's activations of the content images
        (batch, h, w, c); style_target: {layer: activations} of the style image
        (batch 1). Returns {"content", "style", "tv", "total"}, scalars summed
        over the batch.
        """
        features = self.extractor(generated)
        content = losses.content_cost(content_target, features[self.content_layer])
        style = losses.style_cost(style_target,
                                  {name: features[name] for name in self.style_weights},
                                  self.style_weights)
        total = self.alpha * content + self.beta * style
        tv = tf.zeros([], total.dtype)
        if self.tv_weight:
            tv = losses.total_variation(generated, kind=self.tv_kind)
            total += self.tv_weight * tv
        return {"content": content, "style": style, "tv": tv, "total": total}
