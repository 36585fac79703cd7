"""The model side's user errors: each names what was asked for and what to do instead."""

from __future__ import annotations

from symdpo.errors import SymdpoError


class ModelError(SymdpoError):
    """A model request that cannot be met as given."""


class UnknownModelError(ModelError):
    """Neither a preset name nor a model directory."""


class CheckpointError(ModelError):
    """A checkpoint that does not fit the model; the message names the offending keys."""


class HubUnavailableError(ModelError):
    """A Hugging Face hub repository neither in the local cache nor downloadable now; the message names both."""
