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

    def examples(self, rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
        # every random number of the batch in four draws: per-number draws cost more than the training step
        digits = rng.integers(1, self.max_digits + 1, size=(count, 2))
        numbers = rng.integers(np.where(digits == 1, 0, 10 ** (digits - 1)), 10**digits).tolist()
        plus = (rng.random(count) < 0.5).tolist()
        cleans = [f"{a}{'+' if p else '-'}{b}" for (a, b), p in zip(numbers, plus, strict=True)]
        counts = rng.integers(0, self.max_distractors + 1, sum(map(len, cleans))).tolist()
        letters = rng.integers(0, len(DISTRACTORS), sum(counts)).tolist()
        out, c, k = [], 0, 0
        for clean, (a, b), p in zip(cleans, numbers, plus, strict=True):
            noisy = []
            for ch in clean:
                n = counts[c]
                noisy.append(ch + "".join(DISTRACTORS[i] for i in letters[k : k + n]))
                c, k = c + 1, k + n
            out.append(("".join(noisy) + "=", str(a + b if p else a - b)))
        return out


def strip_distractors(prompt: str) -> str:
    """The clean expression of a prompt (for tests and display)."""
    return "".join(ch for ch in prompt if ch not in DISTRACTORS).rstrip("=")
