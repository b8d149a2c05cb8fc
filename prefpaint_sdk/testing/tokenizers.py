"""Tokenizers built in memory (no vocabulary files, no network) for the fixtures' text encoders."""

from __future__ import annotations

__all__ = ["byte_level_clip_tokenizer", "byte_level_t5_tokenizer"]


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2/CLIP byte-level alphabet: every byte maps to a printable unicode character.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def byte_level_clip_tokenizer():
    """A ``CLIPTokenizer`` over the 256-byte alphabet with no merges: every character is a token."""
    from transformers import CLIPTokenizer

    chars = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": i + len(chars) for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def byte_level_t5_tokenizer(model_max_length: int = 512):
    """A T5 tokenizer (Unigram, built in memory by ``tokenizers`` through transformers' ``T5Tokenizer``) over
    printable ASCII: ``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2, then the word-start mark and one piece per
    character. Every character is a token."""
    from transformers import T5Tokenizer

    chars = [chr(c) for c in range(33, 127)]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)] + [(c, -2.0) for c in chars]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=model_max_length)
