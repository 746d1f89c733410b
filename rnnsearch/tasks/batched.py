"""Train K hyperparameter settings of one cell as one model (a leading member dimension).

Every member keeps its own data stream (its seed), initialisation scale, learning rate
and schedule, gradient clipping, divergence flag and early stop, so each result equals
what its request gives when trained alone (up to float rounding). A member that
diverges, whose schedule ends or that trails ``budget.trail`` is frozen while the
others go on.
"""

from __future__ import annotations

import io
import math
import time
import traceback
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from rnnsearch.cells import CellGraph
from rnnsearch.cells.compiler import compile_members
from rnnsearch.tasks.api import DIVERGED, FAILED, OK, STOPPED, EvalRequest, EvalResult
from rnnsearch.tasks.base import Batch, Task
from rnnsearch.tasks.model import build_layers, loop_for, model_parameter_count, products_for, width_for
from rnnsearch.tasks.registry import get_task
from rnnsearch.tasks.train import _ppl, evaluate, loss_rise, pick_device, training_settings


def grouping_pays(device: torch.device | str) -> bool:
    """Whether K settings trained as one model beat the same K trained one after another
    on ``device``. Where a run's time goes to per-operation overhead (the Python step: on
    a GPU, or ``RNNSEARCH_LOOP=eager|torch``) one model amortises it. With the native loop
    on a CPU a run is already bound by its multiplies, at the kernel's speed: K members
    together take about as long as K runs (``bench/batched.py``, K = 20 on one thread:
    training 1.1-1.16x, wall time the same), and one task per setting keeps every worker
    busy."""
    return not loop_for(torch.device(device)).startswith("native")  # the CPU default: sizes are not known here


def group_key(request: EvalRequest) -> tuple:
    """Requests with the same key can train as one model: same cell, task, sizes, budget."""
    hp = request.hparams
    return (
        request.graph_json,
        request.task,
        request.task_options,
        request.budget,
        hp.layers,
        hp.param_budget,
        hp.batch_size,
        hp.unroll,
        request.device,
        request.keep_weights,
    )


class MemberModel(nn.Module):
    """Embedding, L member-batched cell layers and softmax, each with K members."""

    def __init__(
        self,
        graph: CellGraph,
        hidden_size: int,
        layers: int,
        vocab_size: int,
        members: int,
        compile: bool | str = False,
    ):
        super().__init__()
        K, V, n = members, vocab_size, hidden_size
        self.members, self.vocab_size, self.hidden_size = K, V, n
        self.embed = nn.Parameter(torch.empty(K, V, n))
        self.layers = build_layers(lambda mode: compile_members(graph, n, K, compile=mode), layers, compile)
        self.softmax_weight = nn.Parameter(torch.empty(K, V, n))
        self.softmax_bias = nn.Parameter(torch.empty(K, V))
        self.products = products_for(hidden_size, vocab_size)

    def reset_member(self, k: int, init_scale: float, generator: torch.Generator) -> None:
        """The draws of CellModel.reset_parameters, in its order, into member k."""
        bound = init_scale / self.hidden_size**0.5
        with torch.no_grad():
            self.embed[k].uniform_(-bound, bound, generator=generator)
            self.softmax_weight[k].uniform_(-bound, bound, generator=generator)
            self.softmax_bias[k].zero_()
        for layer in self.layers:
            layer.cell.reset_member(k, init_scale, generator)

    def initial_state(self, batch_size: int, device=None, dtype=None):
        return [layer.cell.initial_state(batch_size, device, dtype) for layer in self.layers]

    def forward(self, tokens: torch.Tensor, state):
        K, T, B = tokens.shape
        offsets = (torch.arange(K, device=tokens.device) * self.vocab_size).view(K, 1, 1)
        y = self.embed.reshape(K * self.vocab_size, -1)[tokens + offsets]
        new_state = []
        for layer, s in zip(self.layers, state, strict=True):
            y, s = layer(y, s)
            new_state.append(s)
        with self.products():
            logits = torch.baddbmm(
                self.softmax_bias.unsqueeze(1), y.reshape(K, T * B, -1), self.softmax_weight.transpose(1, 2)
            )
        return logits.view(K, T, B, -1), new_state

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        return {name: p[k].detach().clone() for name, p in self.named_parameters()}

    def load_member(self, k: int, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, p in self.named_parameters():
                p[k].copy_(state[name])


@dataclass
class _Member:
    request: EvalRequest
    lr: float
    status: str = OK
    active: bool = True
    steps: int = 0
    best_val: float | None = None
    best_loss: float | None = None
    best_extras: dict = field(default_factory=dict)
    best_state: dict | None = None
    bad: int = 0
    decays: int = 0
    decaying: bool = False
    tokens: int = 0
    error: str = ""
    start_loss: float | None = None  # per scored target, at the first step
    running: float = 0.0  # the recent training loss: summed, and the targets it is over
    running_n: float = 0.0
    curve: list = field(default_factory=list)  # (step, validation accuracy) at each evaluation


def _stack(batches: list[Batch], device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """Member batches as [K, T, B] tensors, padded to the longest (padding is unscored)."""
    T = max(b.inputs.shape[0] for b in batches)
    K, B = len(batches), batches[0].inputs.shape[1]
    inputs = torch.zeros(K, T, B, dtype=torch.long)
    targets = torch.zeros(K, T, B, dtype=torch.long)
    mask = torch.zeros(K, T, B)
    extras: dict[str, torch.Tensor] = {}
    for k, b in enumerate(batches):
        t = b.inputs.shape[0]
        inputs[k, :t], targets[k, :t], mask[k, :t] = b.inputs, b.targets, b.mask
        for name, m in b.extra_masks.items():
            extras.setdefault(name, torch.zeros(K, T, B))[k, :t] = m
    reset = torch.tensor([b.reset for b in batches])
    return (
        inputs.to(device),
        targets.to(device),
        mask.to(device),
        reset.to(device),
        {k: v.to(device) for k, v in extras.items()},
    )


def _reset_state(state, reset: torch.Tensor):
    keep = (~reset).to(state[0][0].dtype).view(-1, 1, 1)
    return [tuple(t.detach() * keep for t in s) for s in state]


def _losses(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    K = logits.shape[0]
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    return (ce.view(K, -1) * mask.view(K, -1)).sum(1)


def evaluate_group(requests: list[EvalRequest]) -> list[EvalResult]:
    """One result per request, in order. Requests must share :func:`group_key`. Never
    raises for a training problem; if the batched run itself fails, each request is
    trained alone instead."""
    if len(requests) == 1:
        return [evaluate(requests[0])]
    if len({group_key(r) for r in requests}) != 1:
        raise ValueError("evaluate_group needs requests of one cell, task, size and budget")
    try:
        with training_settings():
            return _GroupRun(requests).execute()
    except Exception:
        note = traceback.format_exc(limit=5)[-1000:]
        return [_with_note(evaluate(r), note) for r in requests]


def _with_note(result: EvalResult, note: str) -> EvalResult:
    from dataclasses import replace

    return replace(result, extras=result.extras + (("batched_fallback", 1.0),)) if note else result


class _GroupRun:
    def __init__(self, requests: list[EvalRequest]):
        self.reqs = requests
        self.members = [_Member(r, r.hparams.learning_rate) for r in requests]

    def execute(self) -> list[EvalResult]:
        first = self.reqs[0]
        hp, budget = first.hparams, first.budget
        t0 = time.perf_counter()
        if first.threads:
            torch.set_num_threads(first.threads)
        graph = CellGraph.from_json(first.graph_json)
        task = get_task(first.task, **first.options())
        device = pick_device(first.device)
        K = len(self.reqs)
        n = width_for(graph, hp.param_budget, hp.layers, task.vocab_size)
        params = model_parameter_count(graph, n, hp.layers, task.vocab_size)
        model = MemberModel(graph, n, hp.layers, task.vocab_size, K, compile=loop_for(device, n, hp.batch_size))
        for k, r in enumerate(self.reqs):
            torch.manual_seed(r.seed)
            model.reset_member(k, r.hparams.init_scale, torch.Generator().manual_seed(r.seed))
        model.to(device)
        max_norm = torch.tensor([r.hparams.max_grad_norm for r in self.reqs], device=device)
        valid = self._eval_batches(task, "valid", device)
        streams = [task.train_batches(r.seed, hp.batch_size, hp.unroll) for r in self.reqs]
        state = None
        train_time = 0.0
        steps = 0
        while any(m.active for m in self.members):
            ts = time.perf_counter()
            inputs, targets, mask, reset, _ = _stack([next(s) for s in streams], device)
            if state is None:
                state = model.initial_state(inputs.shape[2], device)
            state = _reset_state(state, reset)
            logits, state = model(inputs, state)
            state = [tuple(t.detach() for t in s) for s in state]
            losses = _losses(logits, targets, mask)
            finite = torch.isfinite(losses).tolist()
            summed, scored = losses.detach().tolist(), mask.reshape(K, -1).sum(1).tolist()
            for k, m in enumerate(self.members):
                if m.active and not finite[k]:
                    m.active, m.status, m.error = False, DIVERGED, "non-finite loss"
                if steps % 50 == 0:
                    m.running, m.running_n = 0.0, 0.0
                m.running, m.running_n = m.running + summed[k], m.running_n + scored[k]
                if m.start_loss is None and scored[k]:
                    m.start_loss = summed[k] / scored[k]
            active = torch.tensor([m.active for m in self.members], device=device)
            if not active.any():
                break
            model.zero_grad(set_to_none=True)
            (torch.where(active, losses, torch.zeros_like(losses)).sum() / inputs.shape[2]).backward()
            self._clip_and_step(model, active, max_norm)
            steps += 1
            for m in self.members:
                if m.active:
                    m.steps += 1
                    m.tokens += inputs.shape[1] * inputs.shape[2]
            train_time += time.perf_counter() - ts
            # the time limit is per setting: K settings together get K times as long
            out_of_budget = steps >= budget.max_steps or time.perf_counter() - t0 >= budget.max_seconds * K
            if steps % budget.eval_every == 0 or out_of_budget:
                self._evaluate_and_schedule(model, task, valid, device)
            if out_of_budget:
                break
        for k, m in enumerate(self.members):
            if m.best_state is not None:
                model.load_member(k, m.best_state)
        test = self._eval_batches(task, "test", device)
        accs, losses, extras = self._score(model, task, test, device)
        wall = time.perf_counter() - t0
        results = []
        for k, m in enumerate(self.members):
            all_extras = dict(m.best_extras)
            if m.status == OK:
                all_extras.update({f"test_{name}": v[k] for name, v in extras.items()})
            weights = self._weights(m, hp.layers, n) if m.request.keep_weights and m.status == OK else None
            results.append(
                EvalResult(
                    request_id=m.request.request_id,
                    status=m.status,
                    val_accuracy=m.best_val,
                    test_accuracy=accs[k] if m.status == OK else None,
                    val_loss=m.best_loss,
                    val_perplexity=_ppl(m.best_loss),
                    test_perplexity=_ppl(losses[k]) if m.status == OK else None,
                    steps=m.steps,
                    tokens_per_s=m.tokens / max(train_time, 1e-9),
                    wall_s=wall,
                    param_count=params,
                    hidden_size=n,
                    device=str(device),
                    worker=f"{__import__('os').uname().nodename}:{__import__('os').getpid()}",
                    error=m.error,
                    extras=tuple(
                        sorted(
                            {
                                **all_extras,
                                "group_size": float(K),
                                "train_tokens": float(m.tokens),
                                "train_seconds": train_time,
                            }.items()
                        )
                    ),
                    curve=tuple(m.curve),
                    weights=weights,
                )
            )
        return results

    def _clip_and_step(self, model: MemberModel, active: torch.Tensor, max_norm: torch.Tensor) -> None:
        """torch.nn.utils.clip_grad_norm_ and plain SGD, per member."""
        grads = [(p, p.grad) for p in model.parameters() if p.grad is not None]
        K = active.shape[0]
        sq = torch.zeros(K, dtype=grads[0][1].dtype, device=active.device)
        for _, g in grads:
            sq = sq + g.reshape(K, -1).pow(2).sum(1)
        total = sq.sqrt()
        coef = torch.clamp(max_norm.to(total.dtype) / (total + 1e-6), max=1.0)
        lr = torch.tensor([m.lr if m.active else 0.0 for m in self.members], dtype=total.dtype, device=active.device)
        step = torch.where(active, coef * lr, torch.zeros_like(lr))
        with torch.no_grad():
            for p, g in grads:
                shape = (K,) + (1,) * (g.dim() - 1)
                g = torch.where(active.view(shape), g, torch.zeros_like(g))  # frozen members: NaN-safe
                p.sub_(g * step.view(shape))

    def _eval_batches(self, task: Task, split: str, device) -> list[tuple]:
        hp, budget = self.reqs[0].hparams, self.reqs[0].budget
        per_member = [
            task.eval_batches(split, r.seed, hp.batch_size, hp.unroll, budget.eval_batches) for r in self.reqs
        ]
        return [_stack(list(bs), device) for bs in zip(*per_member, strict=True)]

    @torch.no_grad()
    def _score(self, model: MemberModel, task: Task, batches, device):
        K = len(self.reqs)
        correct = torch.zeros(K, dtype=torch.float64)
        total = torch.zeros(K, dtype=torch.float64)
        loss = torch.zeros(K, dtype=torch.float64)
        ex_c: dict[str, torch.Tensor] = {}
        ex_t: dict[str, torch.Tensor] = {}
        state = None
        for inputs, targets, mask, reset, extras in batches:
            if state is None:
                state = model.initial_state(inputs.shape[2], device)
            state = _reset_state(state, reset)
            logits, state = model(inputs, state)
            hit = (logits.argmax(-1) == targets).to(mask.dtype)
            correct += (hit * mask).reshape(K, -1).sum(1).double().cpu()
            total += mask.reshape(K, -1).sum(1).double().cpu()
            loss += _losses(logits, targets, mask).double().cpu()
            for name, m in extras.items():
                ex_c[name] = (
                    ex_c.get(name, torch.zeros(K, dtype=torch.float64)) + (hit * m).reshape(K, -1).sum(1).double().cpu()
                )
                ex_t[name] = (
                    ex_t.get(name, torch.zeros(K, dtype=torch.float64)) + m.reshape(K, -1).sum(1).double().cpu()
                )
        total = total.clamp(min=1.0)
        extras_out = {f"{name}_accuracy": (ex_c[name] / ex_t[name].clamp(min=1.0)).tolist() for name in ex_c}
        accs, extras_out = task.ranked((correct / total).tolist(), extras_out)
        return accs, (loss / total).tolist(), extras_out

    def _evaluate_and_schedule(self, model: MemberModel, task: Task, valid, device) -> None:
        accs, losses, extras = self._score(model, task, valid, device)
        budget = self.reqs[0].budget
        bars = dict(budget.trail)
        for k, m in enumerate(self.members):
            if not m.active:
                continue
            acc, vloss = accs[k], losses[k]
            if not math.isfinite(vloss):
                m.active, m.status, m.error = False, DIVERGED, "non-finite loss"
                continue
            if why := loss_rise(m.start_loss, m.running / max(m.running_n, 1.0), vloss, m.steps):
                m.active, m.status, m.error = False, DIVERGED, why
                continue
            m.curve.append((m.steps, acc))
            if m.best_val is None or acc > m.best_val:
                m.best_val, m.best_loss = acc, vloss
                m.best_extras = {name: v[k] for name, v in extras.items()}
                m.best_state = model.member_state(k)
                if not m.decaying:
                    m.bad = 0
            else:
                m.bad += 1
            if m.decaying:
                m.lr /= 2
                m.decays += 1
            elif m.bad >= budget.patience:
                m.decaying, m.decays = True, 1
                m.lr /= 2
            if m.decaying and m.decays > budget.decays:
                m.active = False  # its schedule ended: an early stop, still ok
            if budget.stop_at and m.best_val is not None and m.best_val >= budget.stop_at:
                m.active = False  # the accuracy it was trained to reach
            if m.steps in bars and m.best_val < bars[m.steps]:
                m.active, m.status = False, STOPPED  # trails the reference curve (ASHA)

    def _weights(self, m: _Member, layers: int, n: int) -> bytes | None:
        if m.best_state is None:
            return None
        cells = [
            {k[len(f"layers.{i}.") :]: v.cpu() for k, v in m.best_state.items() if k.startswith(f"layers.{i}.")}
            for i in range(layers)
        ]
        buf = io.BytesIO()
        torch.save({"hidden_size": n, "task": m.request.task, "layers": cells}, buf)
        return buf.getvalue()


__all__ = ["FAILED", "MemberModel", "evaluate_group", "group_key", "grouping_pays"]
