"""Preference losses, SFT term and metrics, compared with TRL's DPOTrainer through its public API (trl 1.x).

TRL's side: a real `trl.DPOTrainer` built from a tiny Llama policy, a differently initialised reference model and
a preference dataset, and its public `evaluate()`, which tokenizes the pairs, scores them with both models and
returns the loss and the metrics it logs. Our side: the same pairs tokenized here, scored with
`symdpo.models.scoring.sequence_logps` on the models' logits, then `preference_loss` / `sft_loss` / `symdpo_loss` / `dpo_metrics`.
Nothing of TRL's internals is touched; trl is pinned to the tested range (1.16 up to 2) in pyproject's [test] extra.
"""

import pytest
import torch
import trl  # a test dependency (pyproject [test]): missing, it fails the suite instead of skipping
from datasets import Dataset
from tolerances import approx_metric
from transformers import LlamaConfig, LlamaForCausalLM

from symdpo.models.scoring import sequence_logps
from symdpo.models.tokenizers import train_tiny_tokenizer
from symdpo.train.losses import dpo_metrics, preference_loss, sft_loss, symdpo_loss

PAIRS = {  # prompt, chosen, rejected: answers of different lengths, so length-normalised losses are tested
    "prompt": ["Question: what color is the shape? Short answer:"] * 3
    + ["Question: how many people are there? Short answer:"] * 3,
    "chosen": [" red", " green yellow", " circle", " two", " three of the people", " no"],
    "rejected": [" blue", " teal", " a photo of a cat", " four", " one", " yes there is"],
}
GROUPS = ["text", "wrong_symbol", "text", "text", "wrong_symbol", "text"]


@pytest.fixture(scope="module")
def tok():
    t = train_tiny_tokenizer()
    t.pad_token = t.eos_token
    return t


def _lm(tok, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                      initializer_range=0.3, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture
def models(tok):  # fresh for every test: accelerate's prepare wraps a model's forward
    return _lm(tok, 0), _lm(tok, 1)  # policy, reference: different weights, so the rewards are not zero


def _trl_eval(tok, models, loss_type: str | list[str], beta: float, label_smoothing: float, tmp_path,
              loss_weights: list[float] | None = None) -> dict:
    """Return the metrics of TRL's public DPOTrainer.evaluate() on PAIRS (one batch of all pairs)."""
    policy, ref = models
    loss_type = [loss_type] if isinstance(loss_type, str) else loss_type
    args = trl.DPOConfig(output_dir=str(tmp_path), loss_type=loss_type, loss_weights=loss_weights, beta=beta,
                         label_smoothing=label_smoothing,
                         per_device_eval_batch_size=len(PAIRS["prompt"]), report_to="none", use_cpu=True,
                         bf16=False, fp16=False)  # fp32 both sides (TRL's default autocasts to bf16)
    ds = Dataset.from_dict(PAIRS)
    trainer = trl.DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=ds, eval_dataset=ds,
                             processing_class=tok)
    return trainer.evaluate()


def _ours(tok, model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (chosen logps, rejected logps, chosen token counts, rejected token counts) by symdpo's scoring.

    Each completion ends with the EOS token, as TRL's documented preprocessing appends it.
    """
    out = []
    for key in ("chosen", "rejected"):
        logps, counts = [], []
        for prompt, answer in zip(PAIRS["prompt"], PAIRS[key], strict=True):
            p = tok(prompt, add_special_tokens=False)["input_ids"]
            a = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            ids = torch.tensor([p + a])
            mask = torch.tensor([[False] * len(p) + [True] * len(a)])
            with torch.no_grad():
                s, c = sequence_logps(model(input_ids=ids).logits, ids, mask)
            logps.append(s)
            counts.append(c)
        out += [torch.cat(logps), torch.cat(counts)]
    return out[0], out[2], out[1], out[3]


@pytest.fixture
def scored(tok, models):
    policy, ref = models
    return _ours(tok, policy), _ours(tok, ref)


@pytest.mark.parametrize("loss_type, label_smoothing", [("sigmoid", 0.0), ("hinge", 0.0), ("ipo", 0.0),
                                                        ("robust", 0.1), ("robust", 0.3)])
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_losses_equal_trl(tok, models, scored, loss_type, label_smoothing, beta, tmp_path):
    want = _trl_eval(tok, models, loss_type, beta, label_smoothing, tmp_path)["eval_loss"]
    (pc, pr, nc, nr), (rc, rr, _, _) = scored
    if loss_type == "ipo":  # per-token mean log-ratios (TRL divides by completion length; so does the DPO repo)
        pc, pr, rc, rr = pc / nc, pr / nr, rc / nc, rr / nr
    losses, _, _ = preference_loss(pc, pr, rc, rr, beta=beta, loss_type=loss_type, label_smoothing=label_smoothing)
    assert losses.mean().item() == pytest.approx(want, rel=1e-5)  # a loss: relative


def test_sft_loss_equals_trl_sft(tok, models, scored, tmp_path):
    want = _trl_eval(tok, models, "sft", 0.1, 0.0, tmp_path)["eval_loss"]
    (pc, _, nc, _), _ = scored
    assert sft_loss(pc, nc).item() == pytest.approx(want, rel=1e-5)  # a loss: relative


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_symdpo_loss_equals_trl_weighted_sum_with_sft(tok, models, scored, loss_type, tmp_path):
    # TRL's loss_type=[…, "sft"] with loss_weights=[1, w] is the SymDPO objective: preference loss + w × NLL
    want = _trl_eval(tok, models, [loss_type, "sft"], 0.1, 0.0, tmp_path, loss_weights=[1.0, 0.7])["eval_loss"]
    (pc, pr, nc, nr), (rc, rr, _, _) = scored
    got = symdpo_loss(pc, pr, rc, rr, nc, nr, beta=0.1, loss_type=loss_type, sft_weight=0.7)
    assert got.loss.item() == pytest.approx(want, rel=1e-5)  # a loss: relative


def test_metrics_equal_trl_and_group_breakdown(tok, models, scored, tmp_path):
    logged = _trl_eval(tok, models, "sigmoid", 0.1, 0.0, tmp_path)
    (pc, pr, _, _), (rc, rr, _, _) = scored
    _, chosen_r, rejected_r = preference_loss(pc, pr, rc, rr, beta=0.1)
    ours = dpo_metrics(chosen_r, rejected_r, pc, pr, groups=GROUPS)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen",
                "logps/rejected"):
        assert ours[key] == approx_metric(key, logged[f"eval_{key}"]), key
    assert 0 < ours["rewards/accuracies"] < 1  # a mix of right and wrong pairs: accuracies are really compared
    text = torch.tensor([g == "text" for g in GROUPS])
    assert ours["rewards/accuracies/text"] == (chosen_r > rejected_r)[text].float().mean().item()
    assert ours["rewards/margins/wrong_symbol"] == pytest.approx((chosen_r - rejected_r)[~text].mean().item())


def test_rewards_are_detached_and_losses_differentiable():
    pol_c, pol_r = torch.tensor([-3.0, -1.0], requires_grad=True), torch.tensor([-2.0, -4.0], requires_grad=True)
    losses, chosen_r, rejected_r = preference_loss(pol_c, pol_r, torch.tensor([-2.5, -1.5]),
                                                   torch.tensor([-2.0, -2.0]), beta=0.2)
    assert not chosen_r.requires_grad and not rejected_r.requires_grad
    losses.sum().backward()
    assert (pol_c.grad < 0).all() and (pol_r.grad > 0).all()  # raise chosen, lower rejected


def test_unknown_loss_type_raises():
    x = torch.zeros(1)
    with pytest.raises(ValueError, match="kto"):
        preference_loss(x, x, x, x, loss_type="kto")
