"""What a Flamingo fine-tune trains, decided here: policies, new-token rows, gates, LoRA and decay groups.

Policies (`policies.POLICIES`):

* ``openflamingo`` (default): the perceiver, the gated cross-attention (``xattn.*``) and the embedding rows of
  the tokens OpenFlamingo added (``<|endofchunk|>``, ``<image>``, ``<PAD>``); the LM's own vocabulary stays as
  released. This is OpenFlamingo's trainable set and the SymDPO paper's.
* ``connector``: the perceiver and the gated cross-attention only.
* ``lora``: LoRA adapters on the LM's attention projections (``TrainingSpec.lora.target_modules``, default
  ``q_proj``/``v_proj``; MPT: ``Wqkv``) and nothing else, as for every family (``policies.POLICIES``). The
  reference's LoRA option (adapters beside the openflamingo set) is ``openflamingo`` with ``lora.enabled``.
* ``full``: everything but the vision tower.

Flamingo's own knob (``TrainingSpec.family_options``, `FLAMINGO_OPTIONS`): ``new_token_rows``, how the added
tokens' rows train: ``rows`` (default), the rows as a parameter of their own before a frozen matrix (no
full-matrix gradient or AdamW state); ``mask``, OpenFlamingo's whole trainable matrix with its gradient masked
(the same updates, tests/train/test_new_token_rows.py).

Weight decay goes to the gated cross-attention parameters only (``xattn.*``), as OpenFlamingo's
``train_utils`` and the SymDPO scripts decay ``gated_cross_attn`` only.
"""

from __future__ import annotations

import torch
from torch import nn

from symdpo.models.flamingo.tokens import END_OF_CHUNK, IMAGE_TOKEN
from symdpo.models.interface import LoraSpec, ParamGroup, TrainingSpec, decay_groups
from symdpo.models.lora import add_lora, merge_lora

DEFAULT_LORA_TARGETS = ["q_proj", "v_proj"]
FLAMINGO_OPTIONS: dict[str, tuple[str, ...]] = {"new_token_rows": ("rows", "mask")}  # name -> values, default first


def family_option(spec: TrainingSpec, name: str) -> str:
    """Return the value of Flamingo's option ``name`` in ``spec`` (its default when unset); raise on another value."""
    values = FLAMINGO_OPTIONS[name]
    value = spec.family_options.get(name, values[0])
    if value not in values:
        raise ValueError(f"model.{name} must be one of {', '.join(values)}, not {value!r}")
    return value


def set_openflamingo_trainable(model: nn.Module, *, train_embeddings: bool = True) -> list[nn.Parameter]:
    """Freeze all but OpenFlamingo's trainable set; return the trainable parameters.

    Trainable: perceiver, gated cross-attention and (``train_embeddings``) the LM input embeddings, of which
    only the rows of the tokens OpenFlamingo added should change (`train_new_token_rows` / `mask_embedding_grads`).
    """
    model.requires_grad_(False)
    model.perceiver.requires_grad_(True)
    model.xattn.requires_grad_(True)
    if train_embeddings:
        model.lm.get_input_embeddings().requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def new_token_rows(tokenizer) -> list[int]:
    """Return the embedding rows of the tokens Flamingo added (``<|endofchunk|>``, ``<image>``, ``<PAD>``)."""
    names = [END_OF_CHUNK, IMAGE_TOKEN] + (["<PAD>"] if tokenizer.pad_token == "<PAD>" else [])
    return [tokenizer.convert_tokens_to_ids(n) for n in names]


def mask_embedding_grads(model: nn.Module, tokenizer) -> torch.Tensor | None:
    """Zero the input-embedding gradient outside the new tokens' rows (a hook); return the row mask."""
    weight = model.lm.get_input_embeddings().weight
    if not weight.requires_grad:
        return None
    keep = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
    keep[new_token_rows(tokenizer)] = 1
    # OpenFlamingo trains only <image>, <|endofchunk|> (and <PAD>): the LM's own vocabulary stays as released.
    # A hook (not a post-backward edit) so the mask is applied before gradient clipping measures the norm.
    weight.register_hook(lambda g: g * keep.to(g.dtype))
    return keep


class NewTokenRows(nn.Module):
    """The new tokens' embedding rows as a parameter of their own, in front of a frozen embedding matrix.

    OpenFlamingo trains only the rows of ``<image>``, ``<|endofchunk|>`` (and ``<PAD>``) by making the whole
    matrix trainable and masking its gradient: every step then holds a full-matrix gradient, and AdamW two
    full-matrix states (MPT-1B: 3 x 103M numbers). Here the matrix is frozen and hooks put these rows in its
    place, in the input lookup and, when the output projection is tied to it, in those logits columns. The
    updates are the same (AdamW is elementwise, and the masked rows' zero gradients moved nothing), as
    tests/train/test_new_token_rows.py checks against the gradient mask. `merge` writes the rows back.
    """

    def __init__(self, lm: nn.Module, ids: list[int]):
        super().__init__()
        embedding = lm.get_input_embeddings()
        weight = embedding.weight
        # index buffers are real even when the weights are still on the meta device (sharded loading)
        dev = torch.device("cpu") if weight.is_meta else weight.device
        self.register_buffer("ids", torch.tensor(ids, device=dev), persistent=False)
        slot = torch.full((weight.shape[0],), -1, dtype=torch.long, device=dev)
        slot[self.ids] = torch.arange(len(ids), device=dev)
        self.register_buffer("slot", slot, persistent=False)  # token id -> row of `rows`, or -1
        self.rows = nn.Parameter(weight.detach()[self.ids].clone())
        self._embedding = [embedding]  # a list: not registered twice; its weight is looked up when used, as a
        # sharding wrapper (FSDP2) replaces the module's parameters
        self._hooks = [embedding.register_forward_hook(self._lookup)]
        output = lm.get_output_embeddings()
        if output is not None and output.weight is weight:  # tied (MPT-1B): the same rows score those tokens
            self._hooks.append(output.register_forward_hook(self._logits))

    def _lookup(self, module, args, out: torch.Tensor) -> torch.Tensor:
        slot = self.slot[args[0]]
        return torch.where((slot >= 0)[..., None], self.rows[slot.clamp(min=0)].to(out.dtype), out)

    def _logits(self, module, args, out: torch.Tensor) -> torch.Tensor:
        hidden = args[0]
        return out.index_copy(-1, self.ids, (hidden @ self.rows.to(hidden.dtype).T).to(out.dtype))

    @torch.no_grad()
    def merge(self) -> None:
        """Copy the trained rows into the embedding matrix (what a save writes)."""
        weight = self._embedding[0].weight
        weight[self.ids] = self.rows.to(weight.dtype)

    def release(self) -> None:
        """Merge the rows, remove the hooks, and leave the matrix trainable as `set_openflamingo_trainable` made it."""
        self.merge()
        for hook in self._hooks:
            hook.remove()
        self._embedding[0].weight.requires_grad_(True)


def train_new_token_rows(model: nn.Module, tokenizer) -> NewTokenRows | None:
    """Freeze the input embeddings and train only the new tokens' rows (`NewTokenRows`); return it, or None.

    None when the embeddings are not trainable, or not a plain ``nn.Embedding`` (a scaled or sharded one):
    use `mask_embedding_grads` there.
    """
    embedding = model.lm.get_input_embeddings()
    if not embedding.weight.requires_grad or type(embedding) is not nn.Embedding:
        return None
    embedding.weight.requires_grad_(False)
    model.new_rows = NewTokenRows(model.lm, new_token_rows(tokenizer))
    return model.new_rows


def release_new_token_rows(model: nn.Module) -> None:
    """Undo `train_new_token_rows` (rows merged into the matrix), so the model saves like any other."""
    rows = getattr(model, "new_rows", None)
    if rows is not None:
        rows.release()
        del model.new_rows


def init_gates(model: nn.Module, value: float) -> None:
    """Set every cross-attention gate (``xattn.*_gate``: attention and feed-forward) to ``value``."""
    with torch.no_grad():
        for name, p in model.xattn.named_parameters():
            if name.endswith("_gate"):
                p.fill_(value)


def param_groups(model: nn.Module, weight_decay: float) -> list[ParamGroup]:
    """Return the AdamW groups of the trainable parameters: decay on the gated cross-attention only."""
    return decay_groups(list(model.named_parameters()), lambda name, p: name.startswith("xattn."), weight_decay)


def prepare_training(model: nn.Module, tokenizer, spec: TrainingSpec) -> list[ParamGroup]:
    """Set ``model``'s trainable parameters for ``spec``; return the optimiser's groups."""
    policy = spec.policy or "openflamingo"
    lora = spec.lora or (LoraSpec() if policy == "lora" else None)
    if lora is not None:
        add_lora(model.lm, lora, DEFAULT_LORA_TARGETS)
    embeddings = spec.train_embeddings and policy == "openflamingo"
    set_openflamingo_trainable(model, train_embeddings=embeddings)
    if policy == "lora":  # adapters only: the vision-to-text layers stay as released
        model.perceiver.requires_grad_(False)
        model.xattn.requires_grad_(False)
    if policy == "full" or spec.train_lm:
        model.lm.requires_grad_(True)
    if spec.train_vision:
        model.vision.requires_grad_(True)
    if lora is not None:
        for name, p in model.lm.named_parameters():
            if "lora_" in name:
                p.requires_grad_(True)
    if policy != "full" and not spec.train_lm:
        if family_option(spec, "new_token_rows") == "mask" or train_new_token_rows(model, tokenizer) is None:
            mask_embedding_grads(model, tokenizer)
    if not spec.train_vision_to_text:
        model.perceiver.requires_grad_(False)
        model.xattn.requires_grad_(False)
    if spec.gate_init is not None:
        init_gates(model, spec.gate_init)
    if spec.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return param_groups(model, spec.weight_decay)


def finish_training(model: nn.Module) -> bool:
    """Put trained new-token rows and LoRA adapters back into the weights; return True when LoRA was merged."""
    release_new_token_rows(model)
    return merge_lora(model.lm)

