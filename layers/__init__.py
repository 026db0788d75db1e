"""Hand-coded Keras layers and losses."""
