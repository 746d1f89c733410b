"""Memorize: read 5 symbols out of 26, then reproduce them (the search's cheap filter)."""

from __future__ import annotations

import string

import numpy as np

from rnnsearch.tasks.base import SequenceTask


class Memorize(SequenceTask):
    name = "memorize"

    def __init__(self, length: int = 5, symbols: int = 26, stream: bool = False):
        if not 1 <= length <= 100 or not 2 <= symbols <= 26:
            raise ValueError("memorize: length 1-100, symbols 2-26")
        self.stream = bool(stream)
        self.length = length
        self.alphabet = string.ascii_lowercase[:symbols]
        super().__init__(self.alphabet + "=")

    def example(self, rng: np.random.Generator) -> tuple[str, str]:
        seq = "".join(self.alphabet[i] for i in rng.integers(0, len(self.alphabet), self.length))
        return seq + "=", seq
