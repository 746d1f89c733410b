"""What a task gives the trainer: seeded batches with a loss mask, and its vocabulary."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

SPLITS = ("train", "valid", "test")
_SPLIT_ID = {s: i for i, s in enumerate(SPLITS)}


@dataclass(frozen=True)
class Batch:
    """Time-first token batch: ``inputs`` and ``targets`` are [T, B]; ``mask`` [T, B] marks
    the targets that count (loss and accuracy); ``reset`` says the state starts at zero;
    ``extra_masks`` are other subsets of targets to report accuracy on."""

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    reset: bool
    extra_masks: dict[str, torch.Tensor] = field(default_factory=dict)

    def to(self, device) -> Batch:
        return Batch(
            self.inputs.to(device),
            self.targets.to(device),
            self.mask.to(device),
            self.reset,
            {k: v.to(device) for k, v in self.extra_masks.items()},
        )


def split_rng(seed: int, split: str) -> np.random.Generator:
    """Independent, reproducible streams per (seed, split)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _SPLIT_ID[split], 0x524E4E])


class Task:
    """A task: ``vocab`` (list of symbols, 0 is padding), training batches, and the
    fixed validation and test batches."""

    name = "task"
    vocab: list[str]
    # sequence tasks reset the state for every batch; stream tasks carry it across batches
    carries_state = False
    # what a search ranks by: the accuracy on every masked target (None), or on the targets
    # of one of the task's extra masks (XML's "closing": the characters memory decides)
    score_on: str | None = None

    def ranked(self, accuracy, extras: dict) -> tuple:
        """(the accuracy ranked by, extras) from the accuracy on every masked target and the
        extra masks' accuracies (numbers, or lists of them per member); with ``score_on``
        the accuracy on every target is kept as the extra ``all_accuracy``."""
        if self.score_on is None:
            return accuracy, extras
        return extras[f"{self.score_on}_accuracy"], {**extras, "all_accuracy": accuracy}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def train_batches(self, seed: int, batch_size: int, unroll: int) -> Iterator[Batch]:
        raise NotImplementedError

    def eval_batches(self, split: str, seed: int, batch_size: int, unroll: int, limit: int = 0) -> list[Batch]:
        raise NotImplementedError


class SequenceTask(Task):
    """Independent examples: input symbols, then the answer emitted one symbol at a time.

    Subclasses give ``example(rng) -> (input_text, answer_text)`` over ``vocab``. The model
    reads ``input + answer`` (teacher forcing) and is scored on predicting the answer.
    """

    eval_examples = 1000

    def __init__(self, symbols: str):
        self.vocab = ["<pad>", *symbols]
        self.index = {s: i for i, s in enumerate(self.vocab)}

    def example(self, rng: np.random.Generator) -> tuple[str, str]:
        return self.examples(rng, 1)[0]

    def examples(self, rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
        """``count`` examples; subclasses give this or ``example``. A task that draws its
        random numbers for many examples at once overrides this one (batches use it)."""
        if type(self).example is SequenceTask.example:
            raise NotImplementedError(f"{type(self).__name__} gives neither example nor examples")
        return [self.example(rng) for _ in range(count)]

    def encode(self, examples: list[tuple[str, str]]) -> Batch:
        seqs, answer_starts = [], []
        for prompt, answer in examples:
            seqs.append([self.index[ch] for ch in prompt + answer])
            answer_starts.append(len(prompt))
        T = max(len(s) for s in seqs) - 1
        B = len(seqs)
        tokens = np.zeros((T + 1, B), dtype=np.int64)
        mask = np.zeros((T, B), dtype=np.float32)
        for b, (s, start) in enumerate(zip(seqs, answer_starts, strict=True)):
            tokens[: len(s), b] = s
            mask[start - 1 : len(s) - 1, b] = 1.0  # targets that are answer symbols
        t = torch.from_numpy(tokens)
        return Batch(t[:-1], t[1:], torch.from_numpy(mask), reset=True)

    # With ``stream``, examples follow each other in each batch row and the state is
    # carried across them (and across batches): a cell must learn to clear its memory.
    stream = False

    def train_batches(self, seed: int, batch_size: int, unroll: int) -> Iterator[Batch]:
        rng = split_rng(seed, "train")
        if self.stream:
            yield from self._stream_batches(rng, batch_size, unroll, limit=None)
            return
        while True:
            yield self.encode(self.examples(rng, batch_size))

    def eval_batches(self, split: str, seed: int, batch_size: int, unroll: int, limit: int = 0) -> list[Batch]:
        rng = split_rng(seed, split)
        n = self.eval_examples if not limit else min(self.eval_examples, limit * batch_size)
        if self.stream:
            return list(self._stream_batches(rng, batch_size, unroll, limit=n))
        examples = self.examples(rng, n)
        return [self.encode(examples[i : i + batch_size]) for i in range(0, n, batch_size)]

    def _stream_batches(
        self, rng: np.random.Generator, batch_size: int, unroll: int, limit: int | None
    ) -> Iterator[Batch]:
        """Rows of back-to-back examples cut into ``unroll`` steps; ``limit`` examples in all
        (then the rows are padded out), or endless when None."""
        rows: list[list[tuple[int, bool]]] = [[] for _ in range(batch_size)]
        made, first = 0, True
        ready: list[tuple[str, str]] = []

        def refill(row: list[tuple[int, bool]]) -> bool:
            nonlocal made
            if limit is not None and made >= limit:
                return False
            if not ready:  # drawn in bulk, taken one by one
                ready.extend(reversed(self.examples(rng, 4 * batch_size)))
            prompt, answer = ready.pop()
            made += 1
            row.extend((self.index[ch], False) for ch in prompt)
            row.extend((self.index[ch], True) for ch in answer)
            return True

        while True:
            for row in rows:
                while len(row) < unroll + 1 and refill(row):
                    pass
            if limit is not None and all(len(r) <= 1 for r in rows):
                return
            tokens = np.zeros((unroll + 1, batch_size), dtype=np.int64)
            mask = np.zeros((unroll + 1, batch_size), dtype=np.float32)
            for b, row in enumerate(rows):
                take = row[: unroll + 1]
                tokens[: len(take), b] = [t for t, _ in take]
                mask[: len(take), b] = [m for _, m in take]
                del row[:unroll]
            t = torch.from_numpy(tokens)
            yield Batch(t[:-1], t[1:], torch.from_numpy(mask[1:]), reset=first)
            first = False


class StreamTask(Task):
    """Language modelling over one long token stream per split: contiguous batches
    (the stream cut into ``batch_size`` rows, read ``unroll`` steps at a time), the
    state carried from batch to batch (Zaremba et al.)."""

    carries_state = True

    def stream(self, split: str, seed: int) -> np.ndarray:
        raise NotImplementedError

    def extra_masks(self, targets: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    def _batches(self, data: np.ndarray, batch_size: int, unroll: int, limit: int = 0) -> list[Batch]:
        rows = len(data) // batch_size
        if rows < 2:
            raise ValueError(f"stream of {len(data)} tokens is too short for batch size {batch_size}")
        grid = data[: rows * batch_size].reshape(batch_size, rows)
        out = []
        for i in range(0, rows - 1, unroll):
            T = min(unroll, rows - 1 - i)
            x = np.ascontiguousarray(grid[:, i : i + T].T)
            y = np.ascontiguousarray(grid[:, i + 1 : i + 1 + T].T)
            extras = {k: torch.from_numpy(v.astype(np.float32)) for k, v in self.extra_masks(y).items()}
            out.append(
                Batch(
                    torch.from_numpy(x),
                    torch.from_numpy(y),
                    torch.ones(T, batch_size),
                    reset=i == 0,
                    extra_masks=extras,
                )
            )
            if limit and len(out) >= limit:
                break
        return out

    def train_batches(self, seed: int, batch_size: int, unroll: int) -> Iterator[Batch]:
        batches = self._batches(self.stream("train", seed), batch_size, unroll)
        while True:  # epochs; the state starts at zero at the top of each
            yield from batches

    def eval_batches(self, split: str, seed: int, batch_size: int, unroll: int, limit: int = 0) -> list[Batch]:
        return self._batches(self.stream(split, seed), batch_size, unroll, limit)
