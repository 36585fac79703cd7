"""Fixtures of the HF-family tests."""

from __future__ import annotations

import pytest
from hf_fixtures import FAMILY_PRESETS, load


@pytest.fixture(params=FAMILY_PRESETS)
def lmm(request):
    return load(request.param)
