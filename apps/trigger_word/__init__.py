"""Trigger-word detection: synthesized clips, spectrograms, Conv1D + GRU, streaming detection."""
