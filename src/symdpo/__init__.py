"""symdpo: SymDPO (symbol demonstrations + DPO) for multimodal in-context learning."""

__version__ = "0.1.0"


def load(name_or_path, **kwargs):
    """Return a Predictor (``.answer(demos, query)``) for a preset name or a saved model directory."""
    from symdpo.infer import load as _load

    return _load(name_or_path, **kwargs)
