"""Tokenizers built in memory (no vocabulary files, no network) for the fixtures' text encoders."""

from __future__ import annotations

__all__ = ["byte_level_clip_tokenizer", "byte_level_t5_tokenizer", "byte_level_qwen_tokenizer"]


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


# Qwen's chat layout, as the Qwen3 templates render one user turn (enough for the pipelines' calls): Z-Image
# asks for ``enable_thinking=True`` (no think block), FLUX.2 klein for ``False`` (an empty one).
_QWEN_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)


def byte_level_qwen_tokenizer(model_max_length: int = 512, vision: bool = False):
    """A Qwen2 tokenizer (byte-level BPE without merges, built in memory by ``tokenizers``) with Qwen's special
    tokens (``<|endoftext|>`` pads, ``<|im_start|>``, ``<|im_end|>``) and a chat template of Qwen's layout:
    every byte is a token. 259 tokens, so a text encoder's ``vocab_size`` of 262 covers them; ``vision=True`` adds
    Qwen2.5-VL's ``<|vision_start|>``, ``<|vision_end|>`` and ``<|image_pad|>`` (ids 259-261) for its processor."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import Qwen2TokenizerFast

    vocab = {c: i for i, c in enumerate(_bytes_to_unicode().values())}
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    if vision:  # ids 259-261: the ids the fixtures' Qwen2.5-VL config names for them
        specials += ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>"]
    for token in specials:
        vocab[token] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    return Qwen2TokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                              unk_token=None, bos_token=None, model_max_length=model_max_length,
                              chat_template=_QWEN_CHAT_TEMPLATE)
