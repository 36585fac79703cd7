"""`HFInterleavedLMM`: the interleaved-model interface (models/interface.py) over a transformers LMM.

Inputs are built by the model's own processor; an answer is tokenized as the continuation of its context
(``inputs.Encoder.answer_ids``: the ids the model reads inside the whole conversation) and appended, so exactly
its tokens are scored. ``module`` is the transformers model itself: its parameter names are its own.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

import torch

from symdpo.models.hf import training
from symdpo.models.hf.families import Family, choose_end_marker, family_of, find_path, get_path
from symdpo.models.hf.families import additive_mask as _additive
from symdpo.models.hf.families import text_positions as _text_positions
from symdpo.models.hf.inputs import Batch, Encoder
from symdpo.models.hf.io import save_hf
from symdpo.models.interface import Context, LoraSpec, ModelInfo, ParamGroup, TrainableModel, TrainingSpec
from symdpo.models.lora import lora_size, merge_lora
from symdpo.models.packing import TreeRows, kept_logits, pack_tree, packed_logps
from symdpo.models.prompts import AGNOSTIC_END, OPENFLAMINGO, PromptFormat, check_kind, check_style
from symdpo.models.scoring import answer_suffix, sequence_logps


def model_max_length(hf) -> int:
    """Return the longest sequence the HF model's text side was built for."""
    cfg = hf.config
    for c in (getattr(cfg, "text_config", None), cfg):
        if c is not None and getattr(c, "max_position_embeddings", None):
            return int(c.max_position_embeddings)
    return 2048


class HFInterleavedLMM(TrainableModel):
    """A transformers interleaved LMM with its processor, speaking in contexts and strings."""

    takes_image_features = False  # its processor tiles and resizes each image itself: contexts carry images

    def __init__(self, hf, processor, *, family: Family | None = None, end_of_chunk: str | None = None,
                 max_length: int | None = None, prompts: dict[str, PromptFormat] | None = None,
                 default_prompt_style: str = "native", source: str | None = None):
        self.spec = family or family_of(hf)
        self.family = self.spec.name
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.end_of_chunk = end_of_chunk or choose_end_marker(self.spec, processor.tokenizer)
        self.hf = hf
        self.max_length = max_length or model_max_length(hf)
        self.prompts = dict(prompts or OPENFLAMINGO)
        self.encoder = Encoder(self.spec, processor, end_of_chunk=self.end_of_chunk, max_length=self.max_length,
                               prefixes=tuple(f.prefix for f in self.prompts.values()))
        self.default_prompt_style = check_style(default_prompt_style)
        self.source = source
        tok = processor.tokenizer
        if tok.pad_token_id is None:  # left padding needs a pad id; masked everywhere, so any token serves
            tok.pad_token = tok.eos_token

    @property
    def module(self) -> torch.nn.Module:
        """The transformers model (every parameter, under its own name)."""
        return self.hf

    def _set_module(self, module: torch.nn.Module) -> None:
        self.hf = module

    @property
    def shard_units(self) -> tuple[str, ...]:
        """Module classes FSDP shards as units: the LM's decoder layers and the blocks transformers keeps whole
        (``_no_split_modules``: vision layers and the like)."""
        present = {type(m).__name__ for m in self.hf.modules()}
        lm = get_path(self.hf, self.spec.lm)
        layers = getattr(lm, "layers", None)
        names = {type(layer).__name__ for layer in layers} if isinstance(layers, torch.nn.ModuleList) else set()
        names |= {n for n in (getattr(self.hf, "_no_split_modules", None) or ()) if n in present}
        return tuple(sorted(names))

    def _frozen_eval(self) -> list[torch.nn.Module]:
        return [get_path(self.hf, self.spec.vision)]

    # ---- inputs -------------------------------------------------------------------------------------------
    def tokenize(self, contexts: list[Context], answers: list[str] | None = None, *, reserve: int = 0) -> Batch:
        """Return the left-padded batch of ``contexts`` (+ ``answers``, each continuing its context) with its image inputs."""
        return self.encoder.batch(contexts, answers, reserve=reserve)
    def _cast_pixels(self, inputs: dict) -> dict:
        """Return ``inputs`` with the pixels in the model's dtype (processors give float32; a bf16 model wants bf16)."""
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(next(self.hf.parameters()).dtype)
        return inputs

    # ---- the interface ---------------------------------------------------------------------------------
    def answer_logps(self, contexts: list[Context], answers: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (B,) summed log-probs of each answer given its context and (B,) answer token counts.

        Differentiable (used by training); only answer tokens count: never padding, prompt or image tokens.
        """
        batch = self.tokenize(contexts, answers)
        k = answer_suffix(batch.answer_mask)  # logits only where they score an answer token
        inputs = self._cast_pixels(batch.model_inputs(self.device))
        logits = self.hf(**inputs, use_cache=False, logits_to_keep=k).logits[:, -k:]
        dev = logits.device
        return sequence_logps(logits, batch.input_ids[:, -k:].to(dev), batch.answer_mask[:, -k:].to(dev))

    def pair_logps(
        self, contexts: list[Context], chosen: list[str], rejected: list[str], *, shared_prefix: bool = True,
        max_tokens_per_row: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return summed log-probs of chosen and rejected answers (B,) each, and their token counts (B,) each.

        With ``shared_prefix`` each row is one sequence, context + chosen + rejected, under a tree-shaped
        attention mask (the rejected answer sees the context, never the chosen one) and with both answers at
        the positions that follow the context (Qwen-VL: its M-RoPE positions for the context, text positions
        after it; IDEFICS: every answer token attends to the context's last image, the processor's rule). The
        context and its images are encoded once. Otherwise each answer is scored on its own copy of the
        context. ``max_tokens_per_row`` packs the pairs' trees into rows of at most that many tokens, with no
        padding (models/packing.py). All give the same values and gradients (tests/models/hf/test_hf_shared_prefix.py,
        tests/train/test_packing.py).
        """
        if not shared_prefix:
            logps, counts = self.answer_logps(contexts + contexts, chosen + rejected)
            b = len(contexts)
            return logps[:b], logps[b:], counts[:b], counts[b:]
        if max_tokens_per_row and self.spec.pack is None:
            raise ValueError(f"{self.family}: packing (data.max_tokens_per_batch) is not available for this family "
                             "(its processor ties each token to a row's image order); leave it unset")
        return self._tree_pair_logps(contexts, chosen, rejected, max_tokens_per_row)

    def _tree_pair_logps(self, contexts, chosen, rejected, max_tokens_per_row=None):
        from symdpo.models.scoring import compute_dtype, masked_logps, pad_right

        enc = self.encoder
        ch = [enc.answer_ids(a, c) for a, c in zip(chosen, contexts, strict=True)]
        rj = [enc.answer_ids(a, c) for a, c in zip(rejected, contexts, strict=True)]
        ctx = enc.batch(contexts, reserve=[max(len(c), len(r)) for c, r in zip(ch, rj, strict=True)])
        ch_ids, ch_mask = pad_right(ch, self.tokenizer.pad_token_id)
        rj_ids, rj_mask = pad_right(rj, self.tokenizer.pad_token_id)
        n_ch, n_rj = ch_ids.shape[1], rj_ids.shape[1]
        positions = (self.spec.positions or _text_positions)(self.hf, ctx, (n_ch, n_rj))
        tree = TreeRows.build(ctx.input_ids, ctx.attention_mask.bool(), ch_ids, ch_mask, rj_ids, rj_mask, positions)
        packed = None
        if max_tokens_per_row:
            packed = pack_tree(tree, max_tokens_per_row, self.tokenizer.pad_token_id)
            row_extras = [self.spec.pack([ctx.row_extras[i] for i in row]) for row in packed.rows]
            input_ids, visible, positions = packed.input_ids, packed.visible, packed.positions
            keep = packed.keep
        else:
            row_extras, input_ids, visible = ctx.row_extras, tree.input_ids, tree.visible
            keep = 1 + n_ch + n_rj  # columns: the context's last token, the chosen tokens, the rejected tokens
        extras = self.spec.collate(row_extras, input_ids, self.processor)  # image masks / token types of the rows
        dev = self.device
        dtype = compute_dtype(self.hf, dev)
        attention = (self.spec.tree_attention or _additive)(self.hf, visible, positions, input_ids, dtype)
        attention = {k: v.to(dev) for k, v in attention.items()} if isinstance(attention, dict) else attention.to(dev)
        inputs = {"input_ids": input_ids.to(dev), "attention_mask": attention,
                  "position_ids": positions.to(dev), **{k: v.to(dev) for k, v in extras.items()}}
        keep = keep.to(dev) if isinstance(keep, torch.Tensor) else keep
        logits = self.hf(**self._cast_pixels(inputs), use_cache=False, logits_to_keep=keep).logits
        if packed is not None:
            return packed_logps(kept_logits(logits, packed), packed)
        first = logits[:, :1]  # the context's last token predicts both answers' first token
        c_sum, c_n = masked_logps(torch.cat([first, logits[:, 1:n_ch]], 1), ch_ids.to(dev), ch_mask.to(dev))
        r_sum, r_n = masked_logps(torch.cat([first, logits[:, 1 + n_ch:-1]], 1), rj_ids.to(dev), rj_mask.to(dev))
        return c_sum, r_sum, c_n, r_n

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
        inputs = self._cast_pixels(batch.model_inputs(self.device))
        tok = self.processor.tokenizer
        config = GenerationConfig(max_new_tokens=max_new_tokens, num_beams=num_beams, length_penalty=length_penalty,
                                  do_sample=False, eos_token_id=self.stop_token_ids(), pad_token_id=tok.pad_token_id,
                                  bos_token_id=tok.bos_token_id)
        if num_beams > 1 and self.spec.prefill_once:
            inputs = self._prefilled(inputs, num_beams)
        out = self.hf.generate(**inputs, generation_config=config)
        new = out[:, batch.input_ids.shape[1]:]
        texts = tok.batch_decode(new, skip_special_tokens=False)
        # the spaces the context's cue ended with were moved to the answer: the model wrote them, drop them
        return [self._strip(t).removeprefix(self.encoder.moved_spaces(c)) for t, c in zip(texts, contexts, strict=True)]

    @functools.cached_property
    def _cache_argument(self) -> str:
        """The name forward and generate take the KV cache under (``cache`` in newer transformers 5 releases)."""
        return "cache" if "cache" in inspect.signature(self.hf.forward).parameters else "past_key_values"

    def _prefilled(self, inputs: dict, num_beams: int) -> dict:
        """Return generate's inputs continuing from one prefill per context, its KV cache repeated per beam.

        HF's beam search copies each context (and its images) once per beam before the prefill: the vision
        tower and the whole context run ``num_beams`` times. Here the context minus its last token runs once,
        the cache is repeated for the beams, and ``generate`` goes on from the last token with the same
        positions (Qwen-VL: the model's M-RoPE deltas, kept from the prefill) and the same tokens
        (tests/models/hf/test_hf_generate.py compares with HF's own beam search).
        """
        from transformers import DynamicCache

        per_token = ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids")
        name = self._cache_argument
        cache = DynamicCache(config=self.hf.config)
        head = {k: v[:, :-1] if k in per_token else v for k, v in inputs.items()}
        self.hf(**head, **{name: cache}, use_cache=True, logits_to_keep=1)
        cache.batch_repeat_interleave(num_beams)
        images = ("pixel_values", "pixel_attention_mask", "image_grid_thw")
        return {**{k: v for k, v in inputs.items() if k not in images}, name: cache}

    def _strip(self, text: str) -> str:
        text = text.split(self.end_of_chunk, 1)[0].split(AGNOSTIC_END, 1)[0]
        tok = self.processor.tokenizer
        for special in (tok.pad_token, tok.eos_token):
            if special:
                text = text.replace(special, "")
        return text

    def answer_token_counts(self, answers: list[str], contexts: list[Context] | None = None) -> list[int]:
        """Return how many tokens each answer scores after its context (alone when None), as scoring reads it."""
        contexts = contexts if contexts is not None else [None] * len(answers)
        return [len(self.encoder.answer_ids(a, c)) for a, c in zip(answers, contexts, strict=True)]

    def image_cache(self):
        """Return a context (no gradients) in which each distinct image is processed and encoded once."""
        import contextlib

        from symdpo.models.hf.image_cache import ImageCache

        return ImageCache(self.hf, self.processor) if self.spec.image_cache else contextlib.nullcontext()

    def image_features(self, images: list) -> torch.Tensor:
        """Return (N, v, D) vision-tower features of images (the last hidden state, for retrieval and caches)."""
        from symdpo.models.hf.inputs import to_pil

        tower = get_path(self.hf, self.spec.vision)
        feats = []
        with torch.no_grad():
            for im in images:
                batch = self.tokenize([[to_pil(im)]])
                pixels = batch.extras["pixel_values"].to(self.device, next(tower.parameters()).dtype)
                kwargs = {"grid_thw": batch.extras["image_grid_thw"].to(self.device)} if "image_grid_thw" in batch.extras else {}
                out = tower(pixels.flatten(0, 1) if pixels.ndim == 5 else pixels, **kwargs)
                hidden = out if isinstance(out, torch.Tensor) else getattr(out, "last_hidden_state", out[0])
                feats.append(hidden.reshape(-1, hidden.shape[-1]).float())
        width = max(f.shape[0] for f in feats) if feats else 1
        return torch.stack([torch.nn.functional.pad(f, (0, 0, 0, width - f.shape[0])) for f in feats]) if feats \
            else torch.zeros(0, 1, 1)

    def prompt_format(self, kind: str, style: str | None = None) -> PromptFormat:
        """Return the family's format for task ``kind``: its own (``native``) or OpenFlamingo's wording."""
        style = check_style(style or self.default_prompt_style)
        return (self.prompts if style == "native" else OPENFLAMINGO)[check_kind(kind)]

    # ---- training ---------------------------------------------------------------------------------------
    def prepare_training(self, spec: TrainingSpec) -> list[ParamGroup]:
        """Set what trains under ``spec`` (models/hf/training.py); return the optimiser's groups."""
        groups = training.prepare_training(self.hf, self.spec, spec)
        self.train(True)
        return groups

    def save_pretrained(self, path: str | Path, *, trainable_only: bool = False) -> None:
        """Write the model to ``path`` (HF weights + processor + our config; or trainable weights over a base)."""
        save_hf(self, path, trainable_only=trainable_only)

    def _fold_trained(self) -> bool:
        return merge_lora(self.hf)

    def info(self) -> ModelInfo:
        """Return the model's family, size, default policy and parts."""
        hf, fam = self.hf, self.spec
        parts = {"vision": [find_path(hf, fam.vision)], "connector": [find_path(hf, p) for p in fam.connector],
                 "cross-attention": [find_path(hf, p) for p in fam.xattn], "lm": [find_path(hf, fam.lm)]}
        sizes = {k: sum(p.numel() for m in ms if m is not None for p in m.parameters()) for k, ms in parts.items()}
        if fam.default_policy == "lora":  # the adapters a default LoRA run adds (they do not exist before)
            trainable = lora_size(get_path(hf, fam.lm), LoraSpec().r, fam.lora_targets)
        else:  # openflamingo / connector: the vision-to-text layers (openflamingo: and the added tokens' rows)
            trainable = sizes["connector"] + sizes["cross-attention"]
            if fam.default_policy == "openflamingo":
                trainable += sum(p.numel() for m in training.parts(hf, fam.new_tokens) for p in m.parameters())
        return ModelInfo(family=f"{fam.name} ({type(hf).__name__})", parameters=sum(p.numel() for p in hf.parameters()),
                         trainable=trainable, default_policy=fam.default_policy,
                         parts={k: v for k, v in sizes.items() if v}, prompt_style=self.default_prompt_style,
                         end_of_chunk=self.end_of_chunk)
