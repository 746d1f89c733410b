"""XML: synthetic nested tags of 2-10 lowercase letters, modelled character by character.

Jozefowicz et al.: "with probability 1/2, or after 50 iterations, close the most recently
opened tag, or stop if none is open; otherwise open a new random tag". Documents are
separated by a newline. Trained as a character language model; scored by next-character
accuracy (``score="chars"``, the paper's) or by the accuracy on the characters of closing
tags (``score="closing"``): the letters of an opening tag are random, so every cell
predicts them equally badly, while a closing tag is decided by what the cell remembers.
Both accuracies are reported either way.
"""

from __future__ import annotations

import string

import numpy as np

from rnnsearch.tasks.base import StreamTask, split_rng

LETTERS = string.ascii_lowercase


def document(
    rng: np.random.Generator,
    min_len: int = 2,
    max_len: int = 10,
    max_iterations: int = 50,
    letters: int = 26,
    max_depth: int = 0,
) -> str:
    """One document. ``letters``: tag names use the first that many letters; ``max_depth``
    (0: no limit) closes a tag instead of opening one when that many are open."""
    stack: list[str] = []
    out: list[str] = []
    iteration = 0
    while True:
        full = bool(max_depth) and len(stack) >= max_depth
        if rng.random() < 0.5 or iteration >= max_iterations or full:
            if not stack:
                return "".join(out)
            out.append(f"</{stack.pop()}>")
        else:
            k = int(rng.integers(min_len, max_len + 1))
            tag = "".join(LETTERS[i] for i in rng.integers(0, letters, k))
            stack.append(tag)
            out.append(f"<{tag}>")
        iteration += 1


class XML(StreamTask):
    name = "xml"

    def __init__(
        self,
        train_chars: int = 2_000_000,
        eval_chars: int = 100_000,
        min_tag: int = 2,
        max_tag: int = 10,
        letters: int = 26,
        max_depth: int = 0,
        score: str = "chars",
    ):
        if score not in ("chars", "closing"):
            raise ValueError(f"xml: score is chars or closing, not {score!r}")
        self.score_on = "closing" if score == "closing" else None
        if not 1000 <= train_chars <= 10**9 or not 1000 <= eval_chars <= 10**8:
            raise ValueError("xml: train_chars >= 1000, eval_chars >= 1000")
        if not 1 <= min_tag <= max_tag <= 20 or not 2 <= letters <= 26 or not 0 <= max_depth <= 50:
            raise ValueError("xml: 1 <= min_tag <= max_tag <= 20, letters 2-26, max_depth 0-50 (0: no limit)")
        self.shape = dict(min_len=min_tag, max_len=max_tag, letters=letters, max_depth=max_depth)
        self.sizes = {"train": train_chars, "valid": eval_chars, "test": eval_chars}
        self.vocab = ["<pad>", "\n", "<", ">", "/", *LETTERS]
        self.index = {s: i for i, s in enumerate(self.vocab)}
        self._cache: dict[tuple[str, int], np.ndarray] = {}

    def text(self, split: str, seed: int) -> str:
        rng = split_rng(seed, split)
        parts, size = [], 0
        while size < self.sizes[split]:
            doc = document(rng, **self.shape)
            if doc:
                parts.append(doc + "\n")
                size += len(doc) + 1
        return "".join(parts)[: self.sizes[split]]

    def stream(self, split: str, seed: int) -> np.ndarray:
        key = (split, seed)
        if key not in self._cache:
            lut = np.zeros(256, dtype=np.int64)
            for s, i in self.index.items():
                if len(s) == 1:
                    lut[ord(s)] = i
            raw = np.frombuffer(self.text(split, seed).encode("ascii"), dtype=np.uint8)
            self._cache[key] = lut[raw]
        return self._cache[key]

    def extra_masks(self, targets: np.ndarray) -> dict[str, np.ndarray]:
        return {"closing": self.closing_mask_of(targets)}

    def closing_mask_of(self, targets: np.ndarray) -> np.ndarray:
        """Targets that are the name letters or '>' of a closing tag (after '</').

        Works on a [T, B] window; a closing tag cut by the window edge is scored from
        where the window can see its '</'."""
        slash, gt = self.index["/"], self.index[">"]
        mask = np.zeros(targets.shape, dtype=bool)
        inside = np.zeros(targets.shape[1], dtype=bool)
        for t in range(targets.shape[0]):
            mask[t] = inside & (targets[t] != slash)
            inside = np.where(targets[t] == slash, True, np.where(targets[t] == gt, False, inside))
        return mask
