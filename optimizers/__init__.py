"""Hand-coded Keras optimizers and learning-rate schedules."""
