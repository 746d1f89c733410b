"""Arithmetic: the sum or difference of two numbers of up to 8 digits, with random
distractor characters between the input characters, e.g. ``3e36d9-h1h39f94eeh43keg3c=``
then ``-13991064``; scored on the answer characters."""

from __future__ import annotations

import string

import numpy as np

from rnnsearch.tasks.base import SequenceTask

DISTRACTORS = string.ascii_lowercase


class Arithmetic(SequenceTask):
    name = "arithmetic"

    def __init__(self, max_digits: int = 8, max_distractors: int = 2, stream: bool = False):
        if not 1 <= max_digits <= 18 or not 0 <= max_distractors <= 10:
            raise ValueError("arithmetic: max_digits 1-18, max_distractors 0-10")
        self.stream = bool(stream)
        self.max_digits = max_digits
        self.max_distractors = max_distractors
        super().__init__("0123456789+-=" + DISTRACTORS)

    def number(self, rng: np.random.Generator) -> int:
        digits = int(rng.integers(1, self.max_digits + 1))
        lo = 0 if digits == 1 else 10 ** (digits - 1)
        return int(rng.integers(lo, 10**digits))

    def example(self, rng: np.random.Generator) -> tuple[str, str]:
        a, b = self.number(rng), self.number(rng)
        op = "+" if rng.random() < 0.5 else "-"
        answer = str(a + b if op == "+" else a - b)
        clean = f"{a}{op}{b}"
        noisy = []
        for ch in clean:
            noisy.append(ch)
            for _ in range(int(rng.integers(0, self.max_distractors + 1))):
                noisy.append(DISTRACTORS[int(rng.integers(0, len(DISTRACTORS)))])
        return "".join(noisy) + "=", answer


def strip_distractors(prompt: str) -> str:
    """The clean expression of a prompt (for tests and display)."""
    return "".join(ch for ch in prompt if ch not in DISTRACTORS).rstrip("=")
