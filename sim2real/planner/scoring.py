"""TWOSOME's scoring of a finite set of candidate actions by a causal language model.

TWOSOME (arXiv 2401.14151, ``twosome/overcooked/policy_pomdp.py``) scores every candidate
``prompt + " " + candidate`` in one batch: the candidate's score is the sum of the log-probabilities
of its tokens given everything before them, normalised by its number of tokens (``token``), of
words (``word``, TWOSOME's default and best) or not at all (``sum``); the policy is the softmax of
the normalised scores.

Departures from the reference, each a fix of a hazard of its code:

* the candidate's token span is read from the tokenisation of the *concatenated* text (the tokens
  whose characters reach past the prompt), not from the candidate tokenised alone minus one BOS:
  byte-level BPE tokenisers (SmolLM2, GPT-2, Qwen) add no BOS and tokenise " put" differently
  from "put";
* padding is done here, on the right, with an attention mask; a row's scores do not depend on
  the batch it is in;
* the value of a prompt is read at its last real token, not at the last position of a padded
  batch (a pad token for every shorter prompt in TWOSOME's ``critic.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim2real.errors import InputError

NORMALIZATIONS = ("sum", "token", "word")
"""How a candidate's summed log-probability is normalised (TWOSOME's ``normalization_mode``)."""


@dataclass(frozen=True)
class Encoded:
    """One tokenised ``prompt + " " + candidate``.

    Attributes:
        ids: token ids of the whole text (special tokens the tokenizer adds included).
        start, end: the candidate's tokens are ``ids[start:end]`` (start >= 1: each is predicted).
        n_words: words of the candidate (``len(candidate.split())``).
    """

    ids: list
    start: int
    end: int
    n_words: int


def _pad_id(tokenizer) -> int:
    for name in ("pad_token_id", "eos_token_id", "unk_token_id"):
        v = getattr(tokenizer, name, None)
        if v is not None:
            return int(v)
    return 0


def candidate_span(tokenizer, prompt: str, candidate: str) -> Encoded:
    """Tokenise ``prompt + " " + candidate`` and find the candidate's tokens in it.

    With a fast tokenizer the span is the tokens (not special) whose character offsets end past
    the prompt; otherwise it is what follows the longest common prefix of the prompt's and the
    text's token ids (trailing special tokens such as an appended EOS excluded).

    Raises:
        InputError: empty candidate, or a candidate whose first token has nothing before it.
    """
    if not candidate.strip():
        raise InputError("a candidate is empty; every candidate must be a non-empty sentence")
    text = prompt + " " + candidate
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
        ids = list(enc["input_ids"])
        special = enc["special_tokens_mask"]
        inside = [i for i, ((_, e), s) in enumerate(zip(enc["offset_mapping"], special))
                  if not s and e > len(prompt)]
        if not inside:
            raise InputError(f"candidate {candidate!r} produced no token after the prompt")
        start, end = inside[0], inside[-1] + 1
    else:
        ids = list(tokenizer(text)["input_ids"])
        p_ids = list(tokenizer(prompt)["input_ids"]) if prompt else []
        start = 0
        while start < min(len(ids), len(p_ids)) and ids[start] == p_ids[start]:
            start += 1
        specials = set(getattr(tokenizer, "all_special_ids", []) or [])
        end = len(ids)
        while end > start and ids[end - 1] in specials:
            end -= 1
    if start < 1 or end <= start:
        raise InputError(f"candidate {candidate!r}: its first token has no context to be scored from (an empty "
                         "prompt with a tokenizer that adds no BOS token); give a non-empty prompt")
    return Encoded(ids, start, end, len(candidate.split()))


def _batch(rows: list, pad_id: int, device):
    """Right-padded (B, L) ids and attention mask."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, :len(r)] = 1
    return ids.to(device), mask.to(device)


def _model_device(model):
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return "cpu"


def _check_batch(prompts: list, candidates: list, normalization: str) -> None:
    """Refuse an unknown normalisation, mismatched lists or a prompt without candidates."""
    if normalization not in NORMALIZATIONS:
        raise InputError(f"normalization {normalization!r} is unknown; use one of {NORMALIZATIONS}")
    if len(prompts) != len(candidates):
        raise InputError(f"{len(prompts)} prompts but {len(candidates)} candidate lists")
    if any(len(c) == 0 for c in candidates):
        raise InputError("a prompt has no candidate; give at least one candidate sentence")


def candidate_logits(model, tokenizer, prompts: list, candidates: list, normalization: str = "word"):
    """Normalised log-scores, differentiable: a (len(prompts), max candidates) float32 tensor.

    Args:
        model: a causal LM (``model(input_ids, attention_mask=...).logits`` of shape (B, L, V)).
        tokenizer: its tokenizer.
        prompts: P prompt strings.
        candidates: P lists of candidate strings (their lengths may differ).
        normalization: 'sum' | 'token' | 'word'.

    Returns:
        (P, K) tensor; rows shorter than K are filled with -inf (probability 0 in a softmax).
    """
    import torch

    _check_batch(prompts, candidates, normalization)
    encoded = [candidate_span(tokenizer, p, c) for p, cands in zip(prompts, candidates) for c in cands]
    ids, mask = _batch([e.ids for e in encoded], _pad_id(tokenizer), _model_device(model))
    logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
    # log p(token t | tokens < t) sits at position t - 1
    token_logp = torch.gather(logp[:, :-1, :], 2, ids[:, 1:, None]).squeeze(-1)
    scores = []
    for row, e in enumerate(encoded):
        s = token_logp[row, e.start - 1:e.end - 1].sum()
        if normalization == "token":
            s = s / (e.end - e.start)
        elif normalization == "word":
            s = s / e.n_words
        scores.append(s)
    k = max(len(c) for c in candidates)
    out = torch.full((len(prompts), k), float("-inf"), device=ids.device)
    i = 0
    for row, cands in enumerate(candidates):
        out[row, :len(cands)] = torch.stack(scores[i:i + len(cands)])
        i += len(cands)
    return out


def score_candidates(model, tokenizer, prompt: str, candidates, normalization: str = "word") -> np.ndarray:
    """TWOSOME's normalised log-scores of ``candidates`` after ``prompt``, in candidate order.

    Each candidate k is scored as the text ``prompt + " " + candidates[k]``:
    S_k = sum over the candidate's tokens of log p(token | all tokens before it), divided by the
    number of its tokens ('token'), of its words ('word') or by 1 ('sum'). The policy over the
    candidates is ``softmax(scores)``.

    Args:
        model: a Hugging Face causal LM (eval mode is the caller's choice; no gradient is kept).
        tokenizer: its tokenizer.
        prompt: the scene and instruction text (non-empty unless the tokenizer adds a BOS).
        candidates: sequence of candidate sentences.
        normalization: 'sum' | 'token' | 'word'.

    Returns:
        (len(candidates),) float64 array.
    """
    import torch

    candidates = list(candidates)
    with torch.no_grad():
        return candidate_logits(model, tokenizer, [prompt], [candidates], normalization)[0].double().cpu().numpy()


def _shared_prompt_row(model, tokenizer, prompt: str, candidates: list, normalization: str):
    """(K,) normalised log-scores of one prompt's candidates with the prompt run once, or None.

    The prompt's tokens go through the model once; its key/value cache is repeated for the K
    candidates, which then run only their own tokens (right-padded). Differentiable (the cache
    carries the gradient back into the prompt's pass). None when the candidates do not share one
    token prefix (a tokeniser that merges across the prompt's end) or the model gives no cache.
    """
    import torch

    encoded = [candidate_span(tokenizer, prompt, c) for c in candidates]
    if len({tuple(e.ids[:e.start]) for e in encoded}) != 1:
        return None
    device = _model_device(model)
    prefix = torch.tensor([encoded[0].ids[:encoded[0].start]], device=device)
    out = model(input_ids=prefix, use_cache=True)
    cache = getattr(out, "cache", None)  # transformers 5 names the key/value cache `cache`
    if cache is None or not hasattr(cache, "batch_repeat_interleave"):
        return None
    first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)  # predicts each candidate's first token
    cache.batch_repeat_interleave(len(candidates))
    ids, mask = _batch([e.ids[e.start:e.end] for e in encoded], _pad_id(tokenizer), device)
    full_mask = torch.cat([torch.ones((len(candidates), prefix.shape[1]), dtype=mask.dtype, device=device), mask], 1)
    logp = torch.log_softmax(model(input_ids=ids, attention_mask=full_mask, cache=cache).logits.float(), -1)
    follow = torch.gather(logp[:, :-1, :], 2, ids[:, 1:, None]).squeeze(-1)  # (K, Lc - 1)
    scores = []
    for k, e in enumerate(encoded):
        n = e.end - e.start
        s = first[ids[k, 0]] + follow[k, :n - 1].sum()
        scores.append(s / {"sum": 1, "token": n, "word": e.n_words}[normalization])
    return torch.stack(scores)


def candidate_logits_shared_prompt(model, tokenizer, prompts: list, candidates: list, normalization: str = "word"):
    """:func:`candidate_logits`, computed prompt by prompt with each prompt run once (shared cache).

    Same (P, K) result within float32 rounding and differentiable; 3-4x less work for a typical
    planner step (a 40-60 token prompt, 3-13 candidates of ~8 tokens). The agent uses it for both
    the rollout and the PPO update, so the first ratio stays exactly 1.
    """
    import torch

    _check_batch(prompts, candidates, normalization)
    rows = []
    for p, cands in zip(prompts, candidates):
        row = _shared_prompt_row(model, tokenizer, p, list(cands), normalization)
        rows.append(row if row is not None else candidate_logits(model, tokenizer, [p], [list(cands)], normalization)[0])
    k = max(len(c) for c in candidates)
    out = torch.full((len(prompts), k), float("-inf"), device=rows[0].device)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def score_candidates_shared_prompt(model, tokenizer, prompt: str, candidates, normalization: str = "word") -> np.ndarray:
    """:func:`score_candidates`, faster: the prompt is run once and its key/value cache shared by all
    candidates (only their own tokens are computed). Used by the planner at decision time."""
    import torch

    with torch.no_grad():
        row = candidate_logits_shared_prompt(model, tokenizer, [prompt], [list(candidates)], normalization)[0]
    return row.double().cpu().numpy()


def prompt_hidden(model, tokenizer, prompts: list):
    """Last-layer hidden state (P, H) at each prompt's last real token (TWOSOME's critic input).

    No gradient. Call with the LoRA adapters disabled to read the frozen model, as TWOSOME does.
    """
    import torch

    rows = [list(tokenizer(p)["input_ids"]) for p in prompts]
    if any(len(r) == 0 for r in rows):
        raise InputError("an empty prompt has no token for the critic to read")
    ids, mask = _batch(rows, _pad_id(tokenizer), _model_device(model))
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    last = mask.sum(dim=1) - 1  # right padding: the last real token of each row
    return out.hidden_states[-1][torch.arange(len(rows), device=ids.device), last].float()
