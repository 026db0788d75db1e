"""Neural style transfer: the optimisation method and a fast feed-forward stylizer."""
