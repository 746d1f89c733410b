"""evaluate(request) -> result: the one training function every runner calls.

The paper's recipe: uniform init, plain SGD on the loss summed over time and averaged
over the batch, gradient-norm clipping, and "after ``patience`` evaluations without
improvement, halve the rate at every evaluation ``decays`` times, then stop".

A setting that blows up stops at once as ``diverged`` (the paper dropped such runs): a
non-finite loss, or, at an evaluation, a recent training loss per scored token above
``DIVERGED_FACTOR`` times the loss of the first step (where every setting starts, near the
uniform prediction's log V), or a validation loss above that while the training loss is
above the start too. A high validation loss alone is not the test: a model that is right
on most targets and very sure of itself on the others has one, and learns. Training runs
with denormal floats flushed to zero: on CPUs that take a microcode assist for them, a
setting whose values drift towards zero otherwise runs 10x slower.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rnnsearch.cells import CellGraph
from rnnsearch.tasks.api import DIVERGED, FAILED, OK, STOPPED, EvalRequest, EvalResult
from rnnsearch.tasks.base import Batch, Task
from rnnsearch.tasks.graphed import GRAPH_MODES, pad_to_bucket
from rnnsearch.tasks.model import CellModel, detach_state, loop_for, model_parameter_count, width_for
from rnnsearch.tasks.registry import get_task


@dataclass(frozen=True)
class Progress:
    """What a progress display shows; ``evaluate`` calls back with it after each step."""

    step: int
    max_steps: int
    loss: float  # running mean loss per scored token
    accuracy: float | None  # last validation accuracy
    elapsed_s: float
    max_seconds: float


# a loss this many times the first step's is a run that went the wrong way: 1.5 stops
# PTB runs headed for perplexity 1e7 and beyond (log loss 16+ against a start of 9.2)
# while a healthy run's noise stays far below it
DIVERGED_FACTOR = 1.5


class Diverged(Exception):
    def __init__(self, why: str = "non-finite loss"):
        super().__init__(why)
        self.why = why


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def evaluate(request: EvalRequest, progress: Callable[[Progress], None] | None = None) -> EvalResult:
    """Train and score one request. Never raises for a training problem: an exception
    becomes ``failed`` with its traceback, a non-finite loss ``diverged``. A run whose best
    validation accuracy is below a bar of ``budget.trail`` at that bar's step is
    ``stopped`` there (no test score). Every result carries the validation curve."""
    t0 = time.perf_counter()
    run = _Run(request, progress)
    with training_settings():
        try:
            return run.execute()
        except Diverged as d:
            return run.result(DIVERGED, time.perf_counter() - t0, error=d.why)
        except Exception:  # failures are data: the search records them and goes on
            return run.result(FAILED, time.perf_counter() - t0, error=traceback.format_exc(limit=20)[-4000:])


@contextlib.contextmanager
def training_settings():
    """Denormals flushed to zero while training; an in-process caller gets its own thread
    count and denormal mode back."""
    threads = torch.get_num_threads()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)


class _Run:
    def __init__(self, request: EvalRequest, progress):
        self.req = request
        self.progress = progress
        self.steps = 0
        self.best_val: float | None = None
        self.best_val_loss: float | None = None
        self.best_extras: dict[str, float] = {}
        self.test: tuple[float, float, dict[str, float]] | None = None
        self.tokens_per_s = 0.0
        self.params = 0
        self.n = 0
        self.device = ""
        self.weights: bytes | None = None
        self.curve: list[tuple[int, float]] = []  # (step, validation accuracy) at each evaluation

    def result(self, status: str, wall: float, error: str = "") -> EvalResult:
        extras = dict(self.best_extras)
        test_acc = test_ppl = None
        if self.test is not None:
            test_acc, test_loss, test_extras = self.test
            test_ppl = _ppl(test_loss)
            extras.update({f"test_{k}": v for k, v in test_extras.items()})
        return EvalResult(
            request_id=self.req.request_id,
            status=status,
            val_accuracy=self.best_val,
            test_accuracy=test_acc,
            val_loss=self.best_val_loss,
            val_perplexity=_ppl(self.best_val_loss),
            test_perplexity=test_ppl,
            steps=self.steps,
            tokens_per_s=self.tokens_per_s,
            wall_s=wall,
            param_count=self.params,
            hidden_size=self.n,
            device=self.device,
            worker=f"{os.uname().nodename}:{os.getpid()}",
            error=error,
            extras=tuple(sorted(extras.items())),
            curve=tuple(self.curve),
            weights=self.weights,
        )

    def execute(self) -> EvalResult:
        req, hp, budget = self.req, self.req.hparams, self.req.budget
        t0 = time.perf_counter()
        if req.threads:
            torch.set_num_threads(req.threads)
        graph = CellGraph.from_json(req.graph_json)
        task = get_task(req.task, **req.options())
        device = pick_device(req.device)
        self.device = str(device)
        self.n = width_for(graph, hp.param_budget, hp.layers, task.vocab_size)
        self.params = model_parameter_count(graph, self.n, hp.layers, task.vocab_size)
        gen = torch.Generator().manual_seed(req.seed)
        torch.manual_seed(req.seed)
        model = CellModel(graph, self.n, hp.layers, task.vocab_size, compile=loop_for(device, self.n, hp.batch_size))
        model.reset_parameters(hp.init_scale, gen)
        model.to(device)
        valid = [
            b.to(device) for b in task.eval_batches("valid", req.seed, hp.batch_size, hp.unroll, budget.eval_batches)
        ]
        lr = hp.learning_rate
        best_state = None
        bad, decays, decaying = 0, 0, False
        state = None
        train_tokens, train_time = 0, 0.0
        running, running_n = 0.0, 0
        start_loss: float | None = None
        bars = dict(budget.trail)
        stopped = False
        batches = task.train_batches(req.seed, hp.batch_size, hp.unroll)
        step, graphed = step_for(model, device)
        while True:
            ts = time.perf_counter()
            batch = next(batches).to(device)
            tokens = batch.inputs.numel()
            if graphed and not task.carries_state:  # a few lengths, a few graphs
                batch = pad_to_bucket(batch)
            if state is None or batch.reset:
                state = model.initial_state(batch.inputs.shape[1], device)
            loss_sum, state = step(model, batch, state, lr, hp.max_grad_norm)
            scored = float(batch.mask.sum())
            self.steps += 1
            running += loss_sum
            running_n += scored
            if start_loss is None and scored:
                start_loss = loss_sum / scored
            train_tokens += tokens
            train_time += time.perf_counter() - ts
            elapsed = time.perf_counter() - t0
            out_of_budget = self.steps >= budget.max_steps or elapsed >= budget.max_seconds
            if self.steps % budget.eval_every == 0 or out_of_budget:
                acc, vloss, extras = score(model, task, valid, device)
                if not math.isfinite(vloss):
                    raise Diverged
                if why := loss_rise(start_loss, running / max(running_n, 1), vloss, self.steps):
                    raise Diverged(why)
                self.curve.append((self.steps, acc))
                if self.best_val is None or acc > self.best_val:
                    self.best_val, self.best_val_loss, self.best_extras = acc, vloss, extras
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    if not decaying:
                        bad = 0
                else:
                    bad += 1
                if decaying:
                    lr /= 2
                    decays += 1
                elif bad >= budget.patience:
                    decaying, decays = True, 1
                    lr /= 2
                if decaying and decays > budget.decays:
                    out_of_budget = True
                if budget.stop_at and self.best_val is not None and self.best_val >= budget.stop_at:
                    out_of_budget = True
                if self.steps in bars and self.best_val < bars[self.steps]:
                    stopped = out_of_budget = True  # trails the reference curve (ASHA)
            if progress := self.progress:
                progress(
                    Progress(
                        self.steps,
                        budget.max_steps,
                        running / max(running_n, 1),
                        self.best_val,
                        elapsed,
                        budget.max_seconds,
                    )
                )
            if self.steps % 50 == 0:
                running, running_n = 0.0, 0
            if out_of_budget:
                break
        self.tokens_per_s = train_tokens / max(train_time, 1e-9)
        self.best_extras = {**self.best_extras, "train_tokens": float(train_tokens), "train_seconds": train_time}
        if stopped:  # its verdict is known: no test scoring, no weights
            return self.result(STOPPED, time.perf_counter() - t0)
        if best_state is not None:
            model.load_state_dict(best_state)
        test = [
            b.to(device) for b in task.eval_batches("test", req.seed, hp.batch_size, hp.unroll, budget.eval_batches)
        ]
        self.test = score(model, task, test, device)
        if req.keep_weights and best_state is not None:
            # the cell layers only: what an exported cell loads (embedding and softmax belong to the task)
            layers = [
                {k[len(f"layers.{i}.") :]: v.cpu() for k, v in best_state.items() if k.startswith(f"layers.{i}.")}
                for i in range(hp.layers)
            ]
            buf = io.BytesIO()
            torch.save({"hidden_size": self.n, "task": req.task, "layers": layers}, buf)
            self.weights = buf.getvalue()
        return self.result(OK, time.perf_counter() - t0)


def loss_rise(start: float | None, train_loss: float, val_loss: float, step: int) -> str | None:
    """Why a setting diverged, when its loss per scored target rose well above its first
    step's: the recent training loss, or the validation loss while the training loss is
    above the start too; None while it did not."""
    if start is None:
        return None
    if train_loss > DIVERGED_FACTOR * start:
        return (
            f"training loss {train_loss:.3g} at step {step} is over {DIVERGED_FACTOR:g}x the first step's {start:.3g}"
        )
    if val_loss > DIVERGED_FACTOR * start and train_loss > start:
        return (
            f"validation loss {val_loss:.3g} at step {step} is over {DIVERGED_FACTOR:g}x the first step's "
            f"{start:.3g}, and the training loss {train_loss:.3g} above it"
        )
    return None


def step_for(model, device: torch.device):
    """The training step: ``sgd_step``, or with ``RNNSEARCH_GRAPHS=1`` on a GPU the same step
    recorded as CUDA graphs (``plain``: its logic without recording, on any device: what
    the tests run on a CPU). Returns ``(step(model, batch, state, lr, max_norm), graphed)``."""
    mode = os.environ.get("RNNSEARCH_GRAPHS", "0")
    if mode not in GRAPH_MODES:
        raise ValueError(f"RNNSEARCH_GRAPHS={mode!r}: use {', '.join(GRAPH_MODES)}")
    if mode == "0" or (mode == "1" and device.type != "cuda"):
        return sgd_step, False
    from rnnsearch.tasks.graphed import CudaCapturer, GraphedSGD, PlainCapturer

    graphed = GraphedSGD(model, CudaCapturer() if mode == "1" else PlainCapturer())
    return (lambda _model, batch, state, lr, max_norm: graphed(batch, state, lr, max_norm)), True


def sgd_step(model, batch: Batch, state, lr: float, max_grad_norm: float) -> tuple[float, list]:
    """One step of the paper's recipe; returns the summed loss and the detached state.

    The loss is summed over time steps and averaged over the batch (the convention the
    paper's learning rates assume). Raises :class:`Diverged` on a non-finite loss.
    """
    logits, state = model(batch.inputs, state)
    state = detach_state(state)
    loss_sum = _masked_loss_sum(logits, batch)
    if not torch.isfinite(loss_sum):
        raise Diverged
    model.zero_grad(set_to_none=True)
    (loss_sum / batch.inputs.shape[1]).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p.add_(p.grad, alpha=-lr)
    return float(loss_sum.detach()), state


def _masked_loss_sum(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1), reduction="none")
    return (ce * batch.mask.reshape(-1)).sum()


@torch.no_grad()
def score(model: CellModel, task: Task, batches: list[Batch], device) -> tuple[float, float, dict[str, float]]:
    """Accuracy on the masked targets, mean loss per masked target, extra-mask accuracies."""
    correct = total = 0.0
    loss = 0.0
    extra_correct: dict[str, float] = {}
    extra_total: dict[str, float] = {}
    state = None
    for batch in batches:
        if state is None or batch.reset:
            state = model.initial_state(batch.inputs.shape[1], device)
        logits, state = model(batch.inputs, state)
        hit = (logits.argmax(-1) == batch.targets).float()
        correct += float((hit * batch.mask).sum())
        total += float(batch.mask.sum())
        loss += float(_masked_loss_sum(logits, batch))
        for k, m in batch.extra_masks.items():
            extra_correct[k] = extra_correct.get(k, 0.0) + float((hit * m).sum())
            extra_total[k] = extra_total.get(k, 0.0) + float(m.sum())
    extras = {f"{k}_accuracy": extra_correct[k] / max(extra_total[k], 1.0) for k in extra_correct}
    accuracy, extras = task.ranked(correct / max(total, 1.0), extras)
    return accuracy, loss / max(total, 1.0), extras


def _ppl(loss: float | None) -> float | None:
    if loss is None:
        return None
    return math.exp(min(loss, 700.0))
