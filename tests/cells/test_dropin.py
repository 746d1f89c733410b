"""The exported file's drop-in for torch.nn.GRU: nn.GRU's interface over the file's layers."""

import importlib.util

import pytest
import torch
from torch import nn

from rnnsearch.cells import compile_cell, export_file, zoo
from rnnsearch.cells.codegen import generate
from rnnsearch.cells.twins import copy_from_torch


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """export(name, as_name=None) -> the exported file, imported from a temporary folder."""
    folder = tmp_path_factory.mktemp("dropin")
    cache = {}

    def load(name, as_name=None):
        as_name = as_name or name
        if (name, as_name) not in cache:
            path = export_file(zoo.get(name), folder / f"cell{len(cache)}.py", name=as_name)
            spec = importlib.util.spec_from_file_location(f"dropin_cell{len(cache)}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            cache[(name, as_name)] = module
        return cache[(name, as_name)]

    return load


class WordLM(nn.Module):
    """Embedding -> rnn -> linear; ``rnn_class`` is the one line that swaps the recurrent layer."""

    def __init__(self, vocab, embed_size, hidden_size, rnn_class=nn.GRU):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed_size)
        self.rnn = rnn_class(embed_size, hidden_size, num_layers=2, dropout=0.2)
        self.out = nn.Linear(hidden_size, vocab)

    def forward(self, tokens, h=None):
        y, h = self.rnn(self.embed(tokens), h)
        return self.out(y), h


def _train(model, tokens, steps=25):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(steps):
        logits, _ = model(tokens[:-1])
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), tokens[1:].flatten())
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses


def test_a_word_model_trains_with_the_drop_in_swapped_in(exported):
    vocab = 20
    tokens = torch.randint(vocab, (13, 4), generator=torch.Generator().manual_seed(0))  # [T, B]
    torch.manual_seed(0)
    reference = _train(WordLM(vocab, 12, 16), tokens)
    torch.manual_seed(0)
    model = WordLM(vocab, 12, 16, rnn_class=exported("GRU").GRU)
    assert model.rnn.proj is not None and len(model.rnn.layers) == 2
    losses = _train(model, tokens)
    assert all(loss == loss and abs(loss) < float("inf") for loss in losses)
    assert losses[-1] < losses[0] - 0.1, losses
    assert reference[-1] < reference[0]


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("input_size", [5, 8])
@pytest.mark.parametrize("with_hx", [False, True])
def test_shapes_are_nn_grus(exported, num_layers, batch_first, input_size, with_hx):
    T, B, n = 4, 3, 8
    kw = dict(num_layers=num_layers, batch_first=batch_first)
    ours, ref = exported("GRU").GRU(input_size, n, **kw), nn.GRU(input_size, n, **kw)
    assert (ours.proj is None) == (input_size == n)
    x = torch.randn((B, T, input_size) if batch_first else (T, B, input_size))
    hx = torch.randn(num_layers, B, n) if with_hx else None
    (y, h), (y_ref, h_ref) = ours(x, hx), ref(x, hx)
    assert y.shape == y_ref.shape and h.shape == h_ref.shape
    # unbatched, as nn.GRU takes it
    y1, h1 = ours(x[0], None if hx is None else hx[:, 0])
    y1_ref, h1_ref = ref(x[0], None if hx is None else hx[:, 0])
    assert y1.shape == y1_ref.shape and h1.shape == h1_ref.shape


def _layer_of(ref, layer):
    """torch's layer ``layer`` of the multi-layer ``ref`` as a one-layer module."""
    one = type(ref)(ref.input_size, ref.hidden_size).to(ref.weight_ih_l0.dtype)
    with torch.no_grad():
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(one, f"{kind}_l0").copy_(getattr(ref, f"{kind}_l{layer}"))
    return one


@pytest.mark.parametrize("name, torch_class", [("GRU", nn.GRU), ("LSTM", nn.LSTM)])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_with_torchs_weights_it_computes_torchs_rnn(exported, name, torch_class, num_layers, dtype, tol):
    T, B, n = 6, 3, 7
    torch.manual_seed(1)
    ref = torch_class(n, n, num_layers=num_layers).to(dtype)
    ours = getattr(exported(name), name)(n, n, num_layers=num_layers).to(dtype)
    layout = generate(zoo.get(name), name)[1]
    for i, layer in enumerate(ours.layers):
        layer.layout = layout
        copy_from_torch(layer, _layer_of(ref, i))
    x = torch.randn(T, B, n, dtype=dtype, requires_grad=True)
    hx = tuple(torch.randn(num_layers, B, n, dtype=dtype) for _ in ours.states)
    hx = hx[0] if len(hx) == 1 else hx
    for state in (None, hx):
        y, h = ours(x, state)
        y_ref, h_ref = ref(x, state)
        torch.testing.assert_close(y, y_ref, atol=tol, rtol=tol)
        if torch_class is nn.LSTM:
            assert isinstance(h, tuple) and len(h) == 2  # (h_n, c_n)
            for a, b in zip(h, h_ref, strict=True):
                torch.testing.assert_close(a, b, atol=tol, rtol=tol)
        else:
            torch.testing.assert_close(h, h_ref, atol=tol, rtol=tol)
    (g,) = torch.autograd.grad(y.square().sum(), x)
    (g_ref,) = torch.autograd.grad(y_ref.square().sum(), x)
    torch.testing.assert_close(g, g_ref, atol=10 * tol, rtol=10 * tol)


@pytest.mark.parametrize("name, as_name", [("MUT1", "MUT1"), ("LSTM", "LSTM"), ("sLSTM", "Arch42")])
def test_the_state_goes_round_in_the_cells_order(exported, name, as_name):
    rnn = getattr(exported(name, as_name), as_name)(4, 6, num_layers=2, batch_first=True).double()
    S = len(zoo.get(name).states)
    assert rnn.states == zoo.get(name).states
    x = torch.randn(2, 9, 4, dtype=torch.float64)
    y, h = rnn(x)
    # two halves, the first's state handed to the second: the whole sequence
    y1, h1 = rnn(x[:, :5])
    y2, h2 = rnn(x[:, 5:], h1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, atol=1e-12, rtol=1e-12)
    if S == 1:
        assert isinstance(h, torch.Tensor) and h.shape == (2, 2, 6)
        torch.testing.assert_close(h2, h, atol=1e-12, rtol=1e-12)
    else:
        assert isinstance(h, tuple) and len(h) == S and all(s.shape == (2, 2, 6) for s in h)
        for a, b in zip(h2, h, strict=True):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
        with pytest.raises(ValueError, match="hx is"):
            rnn(x, h[:-1])
    torch.testing.assert_close(y[:, -1], (h if S == 1 else h[0])[-1], atol=0, rtol=0)


def test_a_searchs_weights_load_as_the_docstring_says(exported, tmp_path, monkeypatch):
    """What `rnnsearch export ID --weights` writes (the trainer's layers' state dicts) loads
    into the drop-in by the three lines of the file's docstring."""
    torch.manual_seed(2)
    n, graph = 6, zoo.get("MUT1")
    layers = [compile_cell(graph, n, name="Arch42") for _ in range(2)]
    torch.save(
        {"hidden_size": n, "task": "ptb", "layers": [layer.state_dict() for layer in layers], "evaluation": 1},
        tmp_path / "cell.pt",
    )
    module = exported("MUT1", "Arch42")
    doc = module.__doc__.splitlines()
    start = next(i for i, ln in enumerate(doc) if ln.strip().startswith("w = torch.load("))
    lines = [ln.strip() for ln in doc[start : start + 3]]
    assert len(lines) == 3 and "Arch42(" in lines[1]
    monkeypatch.chdir(tmp_path)
    scope = {"torch": torch, "Arch42": module.Arch42}
    exec("\n".join(lines), scope)
    rnn = scope["rnn"]
    x = torch.randn(5, 3, n)
    y, h = x, []
    for layer in layers:
        y, s = layer(y)
        h.append(s[0])
    out, h_n = rnn(x)
    torch.testing.assert_close(out, y, atol=0, rtol=0)
    torch.testing.assert_close(h_n, torch.stack(h), atol=0, rtol=0)


@pytest.mark.parametrize("name", ["GRU", "LSTM"])
def test_torch_export_runs_it(exported, name):
    torch.manual_seed(3)
    rnn = getattr(exported(name), name)(5, 6, num_layers=2, dropout=0.5).eval()
    x = torch.randn(4, 3, 5)
    hx = tuple(torch.randn(2, 3, 6) for _ in rnn.states)
    hx = hx[0] if len(hx) == 1 else hx
    program = torch.export.export(rnn, (x, hx))
    x2 = torch.randn(4, 3, 5)
    for args in ((x, hx), (x2, hx)):
        got, want = program.module()(*args), rnn(*args)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


def test_dropout_is_between_layers_in_training_only(exported):
    GRU = exported("GRU").GRU
    torch.manual_seed(4)
    x = torch.randn(6, 3, 8)
    rnn = GRU(8, 8, num_layers=2, dropout=0.9)
    rnn.train()
    a, b = rnn(x)[0], rnn(x)[0]
    assert not torch.equal(a, b)
    assert (a != 0).all()  # nothing dropped after the last layer
    rnn.eval()
    torch.testing.assert_close(rnn(x)[0], rnn(x)[0], atol=0, rtol=0)
    single = GRU(8, 8, num_layers=1, dropout=0.9).train()
    torch.testing.assert_close(single(x)[0], single.eval()(x)[0], atol=0, rtol=0)


def test_bias_false_zeroes_and_freezes_the_biases(exported):
    rnn = exported("LSTM").LSTM(5, 6, num_layers=2, bias=False)
    biases = [layer.cell.bias for layer in rnn.layers]
    assert all(not b.requires_grad and not b.any() for b in biases)
    opt = torch.optim.SGD(rnn.parameters(), lr=1.0)
    rnn(torch.randn(4, 2, 5))[0].sum().backward()
    opt.step()
    rnn.reset_parameters()
    assert all(not b.any() for b in biases)
    assert rnn.proj is not None and rnn.proj.bias is None
    assert exported("LSTM").LSTM(5, 6).layers[0].cell.bias.requires_grad


@pytest.mark.parametrize("name", ["nn", "torch", "super", "tuple"])
def test_a_name_that_would_shadow_gets_rnn_appended(exported, name):
    module = exported("GRU", name)
    assert module.nn is nn and module.torch is torch
    rnn = getattr(module, f"{name}RNN")(3, 4, num_layers=2)
    assert rnn(torch.randn(2, 1, 3))[0].shape == (2, 1, 4)
    assert f"{name}RNN, not {name}" in module.__doc__


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", ["GRU", "LSTM"])
def test_on_cuda_as_on_cpu(exported, name):
    torch.manual_seed(5)
    rnn = getattr(exported(name), name)(5, 6, num_layers=2).double()
    x = torch.randn(4, 3, 5, dtype=torch.float64)
    want = rnn(x)
    got = rnn.cuda()(x.cuda())
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10, check_device=False)
