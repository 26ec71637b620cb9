"""A CLIP BPE tokenizer built from the toy captions' vocabulary.

The vocabulary is laid out as CLIP's is: the 256 byte symbols, the same with the end-of-word
mark `</w>`, one entry per merge, then the two special tokens. Because every byte symbol is in
it, any word (a concept name the model never saw) still tokenizes, character by character.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from pathlib import Path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
_EOW = "</w>"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode symbols."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    keep += list(range(ord("®"), ord("ÿ") + 1))
    codes = keep[:]
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(keep, (chr(c) for c in codes), strict=True))


def _words(texts: list[str]) -> Counter[str]:
    words: Counter[str] = Counter()
    for text in texts:
        words.update(re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", text.lower()))
    return words


def learn_merges(texts: list[str]) -> list[tuple[str, str]]:
    """Byte-pair merges until every word of `texts` is a single symbol.

    Ties break on the pair itself, so the result depends only on the texts.
    """
    byte_map = bytes_to_unicode()
    corpus: dict[tuple[str, ...], int] = {}
    for word, count in _words(texts).items():
        chars = [byte_map[b] for b in word.encode("utf-8")]
        chars[-1] += _EOW
        corpus[tuple(chars)] = count
    merges: list[tuple[str, str]] = []
    while True:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, count in corpus.items():
            for pair in itertools.pairwise(symbols):
                pairs[pair] += count
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        corpus = {_merge(symbols, best): count for symbols, count in corpus.items()}


def _merge(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out: list[str] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


def write_tokenizer(texts: list[str], out_dir: Path, max_length: int = 77) -> int:
    """Write vocab.json, merges.txt and the tokenizer config to `out_dir`; return the vocab size."""
    out_dir.mkdir(parents=True, exist_ok=True)
    symbols = list(bytes_to_unicode().values())
    vocab_list = symbols + [s + _EOW for s in symbols]
    merges = learn_merges(texts)
    vocab_list += ["".join(pair) for pair in merges]
    vocab_list += [BOS, EOS]
    vocab = {token: i for i, token in enumerate(vocab_list)}
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0) + "\n")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (out_dir / "merges.txt").write_text("\n".join(lines) + "\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
        "do_lower_case": True,
        "clean_up_tokenization_spaces": False,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    return len(vocab)
