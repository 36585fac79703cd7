"""`HFInterleavedLMM`: the interleaved-model interface (models/interface.py) over a transformers LMM.

Same methods and attributes as `FlamingoLMM`, so the training recipes and the eval runner take it unchanged:
``end_of_chunk``, ``tokenize``, ``answer_logps``, ``pair_logps``, ``score``, ``generate``, ``save_pretrained``,
``model`` (an `HFModule`), ``tokenizer``, ``device``, ``source``. Inputs are built by the model's own
processor; the answer is tokenized alone and appended, so exactly its tokens are scored.
"""

from __future__ import annotations

from pathlib import Path

import torch

from symdpo.models.flamingo.lmm import sequence_logps
from symdpo.models.hf.families import AGNOSTIC_END, Family, choose_end_marker, family_of
from symdpo.models.hf.inputs import Batch, Encoder
from symdpo.models.hf.recipe import HFModule, RecipeTokenizer
from symdpo.models.interface import Context


def model_max_length(hf) -> int:
    """Return the longest sequence the HF model's text side was built for."""
    cfg = hf.config
    for c in (getattr(cfg, "text_config", None), cfg):
        if c is not None and getattr(c, "max_position_embeddings", None):
            return int(c.max_position_embeddings)
    return 2048


class HFInterleavedLMM:
    """A transformers interleaved LMM with its processor, speaking in contexts and strings."""

    def __init__(self, hf, processor, *, family: Family | None = None, end_of_chunk: str | None = None,
                 max_length: int | None = None, prompt_templates: dict | None = None, source: str | None = None):
        self.family = family or family_of(hf)
        self.processor = processor
        self.end_of_chunk = end_of_chunk or choose_end_marker(self.family, processor.tokenizer)
        self.model = HFModule(hf, self.family)
        self.tokenizer = RecipeTokenizer(processor.tokenizer, end_of_chunk=self.end_of_chunk,
                                         image_token=self.family.image_token)
        self.max_length = max_length or model_max_length(hf)
        self.encoder = Encoder(self.family, processor, end_of_chunk=self.end_of_chunk, max_length=self.max_length)
        self.prompt_templates = prompt_templates or {}
        self.source = source
        tok = processor.tokenizer
        if tok.pad_token_id is None:  # left padding needs a pad id; masked everywhere, so any token serves
            tok.pad_token = tok.eos_token

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ---- inputs -------------------------------------------------------------------------------------------
    def tokenize(self, contexts: list[Context], answers: list[str] | None = None, *, reserve: int = 0) -> Batch:
        """Return the left-padded batch of ``contexts`` (+ ``answers``, tokenized alone) with its image inputs."""
        return self.encoder.batch(contexts, answers, reserve=reserve)

    def _forward(self, batch: Batch) -> torch.Tensor:
        inputs = batch.model_inputs(self.device)
        if "pixel_values" in inputs:  # processors give float32; a bf16 model wants its own dtype
            inputs["pixel_values"] = inputs["pixel_values"].to(next(self.model.hf.parameters()).dtype)
        return self.model.hf(**inputs, use_cache=False).logits

    # ---- the interface ---------------------------------------------------------------------------------
    def answer_logps(self, contexts: list[Context], answers: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (B,) summed log-probs of each answer given its context and (B,) answer token counts.

        Differentiable (used by training); only answer tokens count: never padding, prompt or image tokens.
        """
        batch = self.tokenize(contexts, answers)
        logits = self._forward(batch)
        return sequence_logps(logits, batch.input_ids.to(logits.device), batch.answer_mask.to(logits.device))

    def pair_logps(
        self, contexts: list[Context], chosen: list[str], rejected: list[str], *, shared_prefix: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return summed log-probs of chosen and rejected answers (B,) each, and their token counts (B,) each.

        Each answer is scored on its own copy of the context: ``shared_prefix`` is accepted for the recipes'
        sake, but the tree-masked single row Flamingo uses is not built for HF families (their image
        placeholders and multimodal rope positions would each need their own layout); values and gradients
        are the same either way.
        """
        logps, counts = self.answer_logps(contexts + contexts, chosen + rejected)
        b = len(contexts)
        return logps[:b], logps[b:], counts[:b], counts[b:]

    def score(self, contexts: list[Context], answers: list[str]) -> torch.Tensor:
        """Return (B,) summed log-probabilities of each answer given its context (answer tokens only)."""
        with torch.no_grad():
            return self.answer_logps(contexts, answers)[0]

    def stop_token_ids(self) -> list[int]:
        """Return the token ids generation stops at: the end marker (when one token) and the EOS."""
        tok = self.processor.tokenizer
        ids = tok(self.end_of_chunk, add_special_tokens=False)["input_ids"]
        stops = ids if len(ids) == 1 else []
        if tok.eos_token_id is not None and tok.eos_token_id not in stops:
            stops.append(tok.eos_token_id)
        return stops

    @torch.no_grad()
    def generate(
        self,
        contexts: list[Context],
        *,
        max_new_tokens: int = 20,
        num_beams: int = 1,
        length_penalty: float = 1.0,
    ) -> list[str]:
        """Return the decoded continuation of each context, stopped at ``end_of_chunk`` (marker removed)."""
        from transformers import GenerationConfig

        batch = self.tokenize(contexts, reserve=max_new_tokens)
        inputs = batch.model_inputs(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(next(self.model.hf.parameters()).dtype)
        tok = self.processor.tokenizer
        config = GenerationConfig(max_new_tokens=max_new_tokens, num_beams=num_beams, length_penalty=length_penalty,
                                  do_sample=False, eos_token_id=self.stop_token_ids(), pad_token_id=tok.pad_token_id,
                                  bos_token_id=tok.bos_token_id)
        out = self.model.hf.generate(**inputs, generation_config=config)
        new = out[:, batch.input_ids.shape[1]:]
        texts = tok.batch_decode(new, skip_special_tokens=False)
        return [self._strip(t) for t in texts]

    def _strip(self, text: str) -> str:
        text = text.split(self.end_of_chunk, 1)[0].split(AGNOSTIC_END, 1)[0]
        tok = self.processor.tokenizer
        for special in (tok.pad_token, tok.eos_token):
            if special:
                text = text.replace(special, "")
        return text

    def save_pretrained(self, path: str | Path, *, trainable_only: bool = False) -> None:
        """Write the model to ``path`` (HF weights + processor + our config; or trainable weights over a base)."""
        from symdpo.models.hf.io import save_hf

        save_hf(self, path, trainable_only=trainable_only)
