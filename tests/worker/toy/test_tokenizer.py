from __future__ import annotations

from pathlib import Path

from transformers import CLIPTokenizer

from worker.toy import data, tokenizer


def test_every_caption_word_is_one_token(tmp_path: Path):
    tokenizer.write_tokenizer(data.all_captions(), tmp_path)
    tok = CLIPTokenizer.from_pretrained(tmp_path)
    words = {w for c in data.all_captions() for w in c.split()}
    for word in words:
        assert tok.tokenize(word) == [f"{word}</w>"]


def test_unknown_words_tokenize_by_characters_not_to_unknown(tmp_path: Path):
    tokenizer.write_tokenizer(data.all_captions(), tmp_path)
    tok = CLIPTokenizer.from_pretrained(tmp_path)
    ids = tok("snoopy café").input_ids
    assert tok.unk_token_id not in ids[1:-1]
    assert tok.decode(ids, skip_special_tokens=True).replace(" ", "") == "snoopycafé"


def test_padding_to_77_with_start_and_end_tokens(tmp_path: Path):
    tokenizer.write_tokenizer(data.all_captions(), tmp_path)
    tok = CLIPTokenizer.from_pretrained(tmp_path)
    ids = tok("a red circle", padding="max_length", max_length=tok.model_max_length).input_ids
    assert len(ids) == 77
    assert ids[0] == tok.bos_token_id
    assert ids[4] == tok.eos_token_id


def test_merges_are_deterministic():
    assert tokenizer.learn_merges(data.all_captions()) == tokenizer.learn_merges(list(data.all_captions()))
