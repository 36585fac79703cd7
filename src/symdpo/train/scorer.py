"""The one module handed to accelerate: every model call of a micro-batch in one forward."""

from __future__ import annotations

from torch import nn


class Scorer(nn.Module):
    """The one module handed to accelerate: its forward is every model call of a micro-batch.

    Data-parallel wrappers (DDP, FSDP, DeepSpeed) see one forward per backward, whatever the scoring runs
    inside it (naive: two copies of each context; shared-prefix: one row per pair under a tree mask).
    """

    def __init__(self, lmm, *, shared_prefix: bool = True, max_tokens_per_row: int | None = None):
        super().__init__()
        self.model = lmm.module  # registered: the wrapper syncs and shards these parameters
        self._lmm = [lmm]  # a list, so the model (not a Module) is not registered twice
        self.shared_prefix, self.max_tokens_per_row = shared_prefix, max_tokens_per_row

    def forward(self, contexts: list, chosen: list[str], rejected: list[str] | None = None):
        """Return the model's ``answer_logps`` of the answers, or its ``pair_logps`` when ``rejected`` is given."""
        lmm = self._lmm[0]
        if rejected is None:
            return lmm.answer_logps(contexts, chosen)
        return lmm.pair_logps(contexts, chosen, rejected, shared_prefix=self.shared_prefix,
                              max_tokens_per_row=self.max_tokens_per_row)
