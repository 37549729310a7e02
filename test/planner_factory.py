"""A tiny randomly initialised Llama and a word-level tokenizer built in memory (no download)."""
from __future__ import annotations

WORDS = ("the you see a an on in and red blue green yellow brown gray cyan black block blocks bowl zone corner "
         "put place stack is your task to next step should done then , . table of").split()


def tiny_tokenizer(bos: bool = False):
    """Word-level tokenizer over WORDS (+ [UNK], [PAD], optionally a [BOS] added to every text)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "[PAD]": 1, "[BOS]": 2}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   bos_token="[BOS]" if bos else None)


def tiny_llama(vocab_size: int = 64, seed: int = 0, init: float = 0.3):
    """2-layer, hidden-32 LlamaForCausalLM in eval mode (a larger init so it can become peaked)."""
    import torch

    from sim2real.compat import ensure_torchvision

    ensure_torchvision()
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      initializer_range=init, pad_token_id=1, bos_token_id=2, eos_token_id=0,
                      tie_word_embeddings=False)
    return LlamaForCausalLM(cfg).eval()
