"""Reading a Keras optimizer's config into ours.

Each optimizer here has a textbook form (its default) and Keras's form,
selected by one flag (`Momentum(ewa=False)`, `RMSProp(epsilon_inside_sqrt=True)`,
`Adam(epsilon_hat=True)`). Our `get_config()` always writes that flag; a
config without it was written by the Keras twin (`keras.optimizers.SGD`,
`RMSprop`, `Adam`, `AdamW`), so it is read in Keras's form: the loaded
optimizer then takes exactly the steps the Keras one would have taken.
"""


def in_keras_form(config, **keras_form):
    """`config` with `keras_form` added where the config does not name the flag."""
    return {**keras_form, **config}
