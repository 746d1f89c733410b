import string

import numpy as np
import pytest
import torch

from rnnsearch.tasks.arithmetic import DISTRACTORS, Arithmetic, strip_distractors
from rnnsearch.tasks.base import split_rng
from rnnsearch.tasks.memorize import Memorize
from rnnsearch.tasks.registry import get_task
from rnnsearch.tasks.xml import XML, document


def _take(it, k):
    return [next(it) for _ in range(k)]


@pytest.mark.parametrize(
    "name, options", [("memorize", {}), ("arithmetic", {}), ("xml", {"train_chars": 5000, "eval_chars": 2000})]
)
def test_batches_are_deterministic_under_a_seed(name, options):
    task = get_task(name, **options)
    a = _take(task.train_batches(7, 4, 10), 3)
    b = _take(task.train_batches(7, 4, 10), 3)
    c = _take(task.train_batches(8, 4, 10), 3)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.inputs, y.inputs) and torch.equal(x.mask, y.mask)
    assert any(not torch.equal(x.inputs, z.inputs) for x, z in zip(a, c, strict=True))
    v1 = task.eval_batches("valid", 7, 4, 10, limit=2)
    v2 = task.eval_batches("valid", 7, 4, 10, limit=2)
    t1 = task.eval_batches("test", 7, 4, 10, limit=2)
    assert all(torch.equal(x.inputs, y.inputs) for x, y in zip(v1, v2, strict=True))
    assert not all(torch.equal(x.inputs, y.inputs) for x, y in zip(v1, t1, strict=True))


def test_arithmetic_answer_is_the_true_sum_or_difference():
    task = Arithmetic(max_digits=8, max_distractors=2)
    rng = split_rng(0, "train")
    ops = set()
    for _ in range(2000):
        prompt, answer = task.example(rng)
        assert prompt.endswith("=")
        clean = strip_distractors(prompt)
        op = "+" if "+" in clean else "-"
        ops.add(op)
        a, b = clean.split(op)
        assert 1 <= len(a) <= 8 and 1 <= len(b) <= 8
        assert (a == "0" or a[0] != "0") and (b == "0" or b[0] != "0")
        assert int(answer) == (int(a) + int(b) if op == "+" else int(a) - int(b))
        # at most 2 distractors between successive input characters, never after '='
        run = 0
        for ch in prompt:
            run = run + 1 if ch in DISTRACTORS else 0
            assert run <= 2
    assert ops == {"+", "-"}


def test_arithmetic_scores_only_the_answer_characters():
    task = Arithmetic()
    examples = [("3e36d9-h1h39f94eeh43keg3c=", "-13991064"), ("1+1=", "2")]
    batch = task.encode(examples)
    for b, (_prompt, answer) in enumerate(examples):
        scored = batch.targets[:, b][batch.mask[:, b] > 0]
        assert "".join(task.vocab[i] for i in scored.tolist()) == answer
        # the input at each scored step is the previous true character (teacher forcing)
        inputs = batch.inputs[:, b][batch.mask[:, b] > 0]
        assert "".join(task.vocab[i] for i in inputs.tolist()) == ("=" + answer)[:-1]


def test_memorize_repeats_five_of_twenty_six():
    task = Memorize()
    rng = split_rng(1, "train")
    for _ in range(200):
        prompt, answer = task.example(rng)
        assert len(answer) == 5 and prompt == answer + "="
        assert set(answer) <= set(string.ascii_lowercase)
    batch = task.encode([task.example(rng) for _ in range(3)])
    assert batch.mask.sum().item() == 15


def _parse_xml(text: str) -> None:
    stack, i = [], 0
    while i < len(text):
        assert text[i] == "<", text[i:]
        j = text.index(">", i)
        tag = text[i + 1 : j]
        if tag.startswith("/"):
            assert stack and stack.pop() == tag[1:], "badly nested"
        else:
            assert 2 <= len(tag) <= 10 and tag.isalpha() and tag.islower()
            stack.append(tag)
        i = j + 1
    assert not stack, "unclosed tag"


def test_xml_documents_are_well_nested():
    rng = np.random.default_rng(0)
    docs = [document(rng) for _ in range(500)]
    assert sum(1 for d in docs if d) > 100
    for d in docs:
        _parse_xml(d)
    task = XML(train_chars=5000, eval_chars=2000)
    for line in task.text("valid", 3).split("\n")[:-1]:
        _parse_xml(line)


def test_xml_closing_mask_marks_the_predictable_characters():
    task = XML(train_chars=5000, eval_chars=2000)
    text = "<ab><cde></cde></ab>\n"
    ids = np.array([[task.index[c]] for c in text])
    mask = task.closing_mask_of(ids)[:, 0]
    marked = "".join(c for c, m in zip(text, mask, strict=True) if m)
    assert marked == "cde>ab>"


def test_stream_batches_are_contiguous_and_carry_state():
    task = XML(train_chars=5000, eval_chars=2000)
    batches = task.eval_batches("valid", 0, batch_size=4, unroll=10)
    assert batches[0].reset and not any(b.reset for b in batches[1:])
    # row r continues where it left off: the target of the last step is the next input
    assert torch.equal(batches[0].targets[-1], batches[1].inputs[0])
    assert torch.equal(batches[0].targets[:-1], batches[0].inputs[1:])


def test_stream_mode_chains_examples_and_carries_state():
    task = get_task("arithmetic", max_digits=3, stream=True)
    batches = _take(task.train_batches(0, 3, 12), 4)
    assert batches[0].reset and not any(b.reset for b in batches[1:])
    # the rows continue across batches: the last target is the next batch's first input
    assert torch.equal(batches[0].targets[-1], batches[1].inputs[0])
    # decode row 0: unscored runs are prompts, scored runs their answers
    tokens = [batches[0].inputs[0, 0].item()] + [t for b in batches for t in b.targets[:, 0].tolist()]
    scored = [False] + [m > 0 for b in batches for m in b.mask[:, 0].tolist()]
    runs: list[list] = []
    for t, m in zip(tokens, scored, strict=True):
        if not runs or runs[-1][0] != m:
            runs.append([m, ""])
        runs[-1][1] += task.vocab[t]
    pairs = [(runs[k][1], runs[k + 1][1]) for k in range(0, len(runs) - 2, 2)]  # drop a cut-off last answer
    assert len(pairs) >= 2
    for prompt, answer in pairs:
        expr = strip_distractors(prompt)
        op = "+" if "+" in expr else "-"
        a, b = expr.split(op, 1) if not expr.startswith("-") else (None, None)
        assert a is not None
        assert int(answer) == (int(a) + int(b) if op == "+" else int(a) - int(b))
    valid = task.eval_batches("valid", 0, 3, 12, limit=4)
    assert sum(float(b.mask.sum()) for b in valid) > 0
