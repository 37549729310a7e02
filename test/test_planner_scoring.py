"""TWOSOME scoring: spans, padding, batching, normalisations (tiny random Llama, CPU, seconds)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from planner_factory import tiny_llama, tiny_tokenizer  # noqa: E402

from sim2real.errors import InputError  # noqa: E402
from sim2real.planner import score_candidates  # noqa: E402  (the public path)
from sim2real.planner.scoring import candidate_span, prompt_hidden  # noqa: E402

PROMPTS = ["you see a red block and a blue bowl . your task is to put the red block in the blue bowl . "
           "your next step is to",
           "you see a green block . your next step is to"]
CANDIDATES = ["put the red block in the blue bowl", "done", "stack the red block on the blue block",
              "place the bowl"]


def hand_scores(model, tok, prompt, candidates, normalization):
    """Log-probs computed one text at a time, no padding, the prompt's tokens found by tokenising it alone."""
    out = []
    n_prompt = len(tok(prompt)["input_ids"])
    for c in candidates:
        ids = tok(prompt + " " + c)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
        s = sum(float(logp[t - 1, ids[t]]) for t in range(n_prompt, len(ids)))
        n_tok = len(ids) - n_prompt
        out.append(s / {"sum": 1, "token": n_tok, "word": len(c.split())}[normalization])
    return np.array(out)


@pytest.fixture(scope="module")
def lm():
    tok = tiny_tokenizer()
    return tiny_llama(len(tok)), tok


@pytest.mark.parametrize("normalization", ["sum", "token", "word"])
@pytest.mark.parametrize("prompt", PROMPTS)
def test_each_normalisation_equals_a_hand_computation(lm, normalization, prompt):
    model, tok = lm
    got = score_candidates(model, tok, prompt, CANDIDATES, normalization)
    np.testing.assert_allclose(got, hand_scores(model, tok, prompt, CANDIDATES, normalization), atol=1e-5)


def test_normalisations_differ_by_the_counts(lm):
    model, tok = lm
    s = score_candidates(model, tok, PROMPTS[0], CANDIDATES, "sum")
    np.testing.assert_allclose(score_candidates(model, tok, PROMPTS[0], CANDIDATES, "word"),
                               s / np.array([len(c.split()) for c in CANDIDATES]), atol=1e-6)


def test_batched_scores_equal_one_at_a_time(lm):
    model, tok = lm
    batched = score_candidates(model, tok, PROMPTS[1], CANDIDATES, "token")
    single = np.array([score_candidates(model, tok, PROMPTS[1], [c], "token")[0] for c in CANDIDATES])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_padding_and_candidate_order_change_nothing(lm):
    model, tok = lm
    base = score_candidates(model, tok, PROMPTS[0], CANDIDATES[:2], "word")
    # a much longer candidate in the batch pads the others far to the right
    long = CANDIDATES[:2] + [" ".join(["the red block"] * 20)]
    padded = score_candidates(model, tok, PROMPTS[0], long, "word")[:2]
    np.testing.assert_allclose(base, padded, atol=1e-5)
    order = [3, 1, 0, 2]
    shuffled = score_candidates(model, tok, PROMPTS[0], [CANDIDATES[i] for i in order], "word")
    np.testing.assert_allclose(shuffled, score_candidates(model, tok, PROMPTS[0], CANDIDATES, "word")[order], atol=1e-5)


def test_spans_right_for_a_tokenizer_without_bos_and_with_one():
    plain, with_bos = tiny_tokenizer(bos=False), tiny_tokenizer(bos=True)
    e = candidate_span(plain, "your next step is to", "put the red block")
    assert (e.start, e.end, len(e.ids), e.n_words) == (5, 9, 9, 4)
    assert plain.convert_ids_to_tokens(e.ids[e.start:e.end]) == ["put", "the", "red", "block"]
    b = candidate_span(with_bos, "your next step is to", "put the red block")
    assert (b.start, b.end) == (6, 10) and with_bos.convert_ids_to_tokens(b.ids[b.start:b.end])[0] == "put"
    # a one-word prompt without BOS: the candidate still starts at token 1
    assert candidate_span(plain, "to", "done").start == 1
    with pytest.raises(InputError):
        candidate_span(plain, "", "done")  # no BOS, nothing before the candidate's first token
    with pytest.raises(InputError):
        candidate_span(plain, "to", "  ")


def test_scores_with_bos_tokenizer_match_hand_computation():
    tok = tiny_tokenizer(bos=True)
    model = tiny_llama(len(tok), seed=3)
    np.testing.assert_allclose(score_candidates(model, tok, PROMPTS[1], CANDIDATES, "token"),
                               hand_scores(model, tok, PROMPTS[1], CANDIDATES, "token"), atol=1e-5)


def test_byte_level_bpe_spans_come_from_the_concatenated_text():
    """A byte-level BPE merges the space into the candidate's first token: 'Ġput', not 'put'."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted(set("".join(
        pre_tokenizers.ByteLevel.alphabet()))))}
    for t in ("pu", "put", "Ġput", "to"):
        vocab[t] = len(vocab)
    bpe = Tokenizer(models.BPE(vocab, [("p", "u"), ("pu", "t"), ("Ġ", "put"), ("t", "o")]))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe)
    e = candidate_span(tok, "to", "put")
    assert tok.convert_ids_to_tokens(e.ids[e.start:e.end]) == ["Ġput"]  # one token, the space merged in
    assert tok("put")["input_ids"] != e.ids[e.start:e.end]  # TWOSOME's alone-tokenised span would differ


def test_critic_reads_the_last_real_prompt_token(lm):
    model, tok = lm
    short, long = PROMPTS[1], PROMPTS[0]
    together = prompt_hidden(model, tok, [short, long])
    alone = prompt_hidden(model, tok, [short])
    torch.testing.assert_close(together[0], alone[0], atol=1e-5, rtol=0)
    ids = tok(short)["input_ids"]
    with torch.no_grad():
        h = model(torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0, -1]
    torch.testing.assert_close(alone[0], h, atol=1e-5, rtol=0)


def test_unknown_normalisation_is_refused(lm):
    model, tok = lm
    with pytest.raises(InputError, match="normalization"):
        score_candidates(model, tok, PROMPTS[1], CANDIDATES, "mean")


@pytest.mark.parametrize("normalization", ["sum", "token", "word"])
def test_shared_prompt_cache_gives_the_same_scores(lm, normalization):
    from sim2real.planner.scoring import score_candidates_shared_prompt

    model, tok = lm
    for prompt in PROMPTS:
        np.testing.assert_allclose(score_candidates_shared_prompt(model, tok, prompt, CANDIDATES, normalization),
                                   score_candidates(model, tok, prompt, CANDIDATES, normalization), atol=1e-5)


def test_shared_prompt_logits_and_their_gradients_equal_the_batched_ones():
    """The agent's fast path (each prompt run once) gives the same scores and the same LoRA gradient
    as the reference batch of whole texts, for prompts of different lengths and candidate counts."""
    from sim2real.planner.agent import LLMAgent
    from sim2real.planner.scoring import candidate_logits, candidate_logits_shared_prompt

    tok = tiny_tokenizer()
    agent = LLMAgent(tiny_llama(len(tok), seed=3), tok, normalization="word")
    cands = [CANDIDATES, CANDIDATES[:2]]
    grads = []
    for fn in (candidate_logits, candidate_logits_shared_prompt):
        agent.actor.zero_grad()
        out = fn(agent.actor, tok, PROMPTS, cands, "word")
        finite = torch.isfinite(out)
        (out[finite] * torch.arange(1.0, 1.0 + finite.sum())).sum().backward()
        grads.append(([p.grad.clone() for p in agent.adapter_parameters()], out.detach()))
    (g_ref, ref), (g_fast, fast) = grads
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=0)
    assert torch.isinf(fast[1, 2:]).all()
    assert any(g.abs().sum() > 0 for g in g_ref)
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, atol=1e-4 * float(b.abs().max()), rtol=1e-3)  # float32 sums in another order
