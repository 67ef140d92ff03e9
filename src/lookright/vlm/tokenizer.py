"""A CLIP byte-pair tokenizer whose vocabulary is built from a caption corpus.

The files are CLIP's own format (``vocab.json`` + ``merges.txt``), so the result is a plain
``transformers.CLIPTokenizer`` that saves and loads like any CLIP tokenizer. The vocabulary holds
every lower-case letter, digit and punctuation mark, each also with CLIP's end-of-word marker
``</w>``, plus one merge chain per corpus word (``c i -> ci``, ``ci r -> cir``, ...), so corpus
words become one or a few tokens and any other text still tokenises (letter by letter).
The special tokens ``<|startoftext|>`` and ``<|endoftext|>`` get the two highest ids, as in
CLIP, whose text tower pools at the first ``<|endoftext|>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789,.'-!?:;"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def corpus_words(texts: Iterable[str]) -> list[str]:
    """Words in first-seen order (lower case, CLIP's splitting into letters/digits/punctuation)."""
    seen: dict[str, None] = {}
    for text in texts:
        for word in re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", text.lower()):
            seen.setdefault(word, None)
    return list(seen)


def write_tokenizer_files(texts: Iterable[str], folder: str | Path) -> tuple[Path, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {}
    merges: list[tuple[str, str]] = []

    def add(token: str) -> None:
        vocab.setdefault(token, len(vocab))

    for ch in ALPHABET:
        add(ch)
        add(ch + "</w>")
    known_merges: set[tuple[str, str]] = set()
    for word in corpus_words(texts):
        if any(ch not in ALPHABET for ch in word):
            continue
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        current = symbols[0]
        for sym in symbols[1:]:
            if (current, sym) not in known_merges:
                known_merges.add((current, sym))
                merges.append((current, sym))
            current += sym
            add(current)
    add(BOS)
    add(EOS)
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab_file.write_text(json.dumps(vocab))
    merges_file.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return vocab_file, merges_file


def build_tokenizer(texts: Iterable[str], folder: str | Path):
    """A ``CLIPTokenizer`` for ``texts`` (files written under ``folder``)."""
    from transformers import CLIPTokenizer

    vocab_file, merges_file = write_tokenizer_files(texts, folder)
    return CLIPTokenizer(str(vocab_file), str(merges_file), unk_token=EOS, bos_token=BOS, eos_token=EOS, pad_token=EOS)
