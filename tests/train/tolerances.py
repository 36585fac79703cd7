"""How close two computations of a training metric must be, by what the metric is.

float32 rounding is relative to a value's size, so losses, log-probs and gradient norms are compared
relatively: a loss of 22 rounds 20 times coarser than a loss of 1.1. Rewards and margins are β times
differences of log-probs: they start at 0 (the policy is the reference) while their rounding is that of the
log-probs they come from, so they are relative with an absolute floor of ``rel`` (a log-prob's size is
about 1 in these tiny models, and β < 1 only shrinks it). Accuracies are shares in [0, 1]: absolute.
"""

from __future__ import annotations

import pytest


def approx_metric(key: str, want: float, rel: float = 1e-5):
    """Return ``pytest.approx(want)`` with the tolerance that fits metric ``key`` (TRL's metric names)."""
    if key.startswith("rewards/accuracies"):
        return pytest.approx(want, abs=1e-6)
    if key.startswith("rewards/"):
        return pytest.approx(want, rel=rel, abs=rel)
    return pytest.approx(want, rel=rel)
