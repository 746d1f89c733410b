"""The CUDA-graph step's logic, on a CPU through the plain capturer: one graph per input
shape after the warm-up, every call one real step, static buffers refreshed per call,
plain steps beyond the graph limit, and lengths padded to a few buckets."""

import pytest
import torch

from rnnsearch.tasks.graphed import LENGTH_BUCKETS, GraphedStep, PlainCapturer, bucket_length


def _sgd_step(model: torch.nn.Linear, lr: torch.Tensor):
    """A whole training step with the rate as a tensor (a recorded graph cannot take a
    Python number that changes): what the trainer would capture."""

    def step(x, y):
        loss = ((model(x) - y) ** 2).mean()
        grads = torch.autograd.grad(loss, list(model.parameters()))
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads, strict=True):
                p.sub_(lr * g)
        return loss.detach()

    return step


def test_every_call_is_one_real_step_and_graphs_are_per_shape():
    torch.manual_seed(0)
    graphed_model, plain_model = torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)
    plain_model.load_state_dict(graphed_model.state_dict())
    lr = torch.tensor(0.1)
    cap = PlainCapturer()
    graphed = GraphedStep(_sgd_step(graphed_model, lr), cap, warmup=2)
    plain = _sgd_step(plain_model, lr)
    batches = [(torch.randn(8, 4), torch.randn(8, 2)) for _ in range(5)]
    batches += [(torch.randn(3, 4), torch.randn(3, 2)) for _ in range(4)]
    for x, y in batches:
        torch.testing.assert_close(graphed(x, y), plain(x, y))
    for a, b in zip(graphed_model.parameters(), plain_model.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert cap.captures == 2 and cap.warmups == 4 == graphed.plain_calls  # two shapes, two warm-ups each
    assert len(graphed.graphs) == 2


def test_beyond_the_graph_limit_steps_run_plainly():
    model = torch.nn.Linear(4, 2)
    cap = PlainCapturer()
    graphed = GraphedStep(_sgd_step(model, torch.tensor(0.01)), cap, warmup=0, max_graphs=2)
    for rows in (2, 3, 4, 5, 2, 5):
        graphed(torch.randn(rows, 4), torch.randn(rows, 2))
    assert cap.captures == 2 and graphed.plain_calls == 3  # rows 4 and 5 (twice) never got a graph


def test_lengths_pad_to_a_few_buckets():
    assert [bucket_length(t) for t in (1, 16, 17, 33, 100, 512, 600)] == [16, 16, 32, 64, 128, 512, 600]
    assert len({bucket_length(t) for t in range(1, 513)}) == 6


@pytest.mark.parametrize("task", ["arithmetic", "ptb"])
def test_the_graphed_training_step_trains_as_the_plain_one(task, monkeypatch):
    """RNNSEARCH_GRAPHS=plain runs the trainer through GraphedSGD (recording aside: the plain
    capturer), with arithmetic's batches padded to bucket lengths: the same evaluation."""
    from rnnsearch.tasks.train import evaluate

    from .test_train import _request

    request = _request(task=task, learning_rate=0.5, max_grad_norm=1.0)
    monkeypatch.setenv("RNNSEARCH_LOOP", "eager")  # one loop for both runs
    monkeypatch.setenv("RNNSEARCH_GRAPHS", "0")
    plain = evaluate(request)
    monkeypatch.setenv("RNNSEARCH_GRAPHS", "plain")
    graphed = evaluate(request)
    assert plain.status == graphed.status == "ok", (plain.error, graphed.error)
    assert graphed.steps == plain.steps
    assert graphed.val_accuracy == pytest.approx(plain.val_accuracy, abs=0.02)
    assert graphed.val_perplexity == pytest.approx(plain.val_perplexity, rel=1e-3)


def test_padding_keeps_what_is_scored():
    from rnnsearch.tasks.graphed import pad_to_bucket
    from rnnsearch.tasks.registry import get_task

    batches = get_task("arithmetic").train_batches(0, 4, 10)
    batch = next(b for b in batches if b.inputs.shape[0] not in LENGTH_BUCKETS)
    padded = pad_to_bucket(batch)
    assert padded.inputs.shape[0] == bucket_length(batch.inputs.shape[0]) > batch.inputs.shape[0]
    assert float(padded.mask.sum()) == float(batch.mask.sum())
    assert torch.equal(padded.targets[: batch.targets.shape[0]], batch.targets)
