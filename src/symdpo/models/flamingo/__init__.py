"""Flamingo: an OpenFlamingo-compatible interleaved image-text model on current transformers."""
