"""gemm.c's kernel (rnnsearch.cells.matmul) equals torch's products: shapes that cross its
register tile (6 rows), panel (64 columns) and k-block (192) edges, transposed and strided
operands, batches, accumulation, 1 and 2 threads; and fast_products' gradients equal
autograd's through torch's own products."""

import pytest
import torch
import torch.nn.functional as F

from rnnsearch.cells.matmul import available, fast_products, product

pytestmark = pytest.mark.skipif(not available(), reason="gemm.c's kernel needs AVX-512 and a C compiler")


@pytest.fixture(autouse=True)
def _the_kernel(monkeypatch):
    """These tests are of the kernel: it runs whatever the planner measured here."""
    monkeypatch.setenv("RNNSEARCH_PLAN", "products=gemm,softmax=gemm")


SHAPES = [(1, 1, 1), (5, 7, 3), (6, 64, 16), (13, 70, 200), (20, 800, 200), (7, 130, 193), (97, 65, 385)]


def _operands(M, N, K, a_t, b_t, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(K, M, generator=g).t() if a_t else torch.randn(M, K, generator=g)
    b = torch.randn(N, K, generator=g).t() if b_t else torch.randn(K, N, generator=g)
    return a, b


def _close(got, ref, K):
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5 * max(1.0, K**0.5))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("a_t,b_t", [(False, False), (True, False), (False, True), (True, True)])
def test_product_equals_torch(M, N, K, a_t, b_t, threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = _operands(M, N, K, a_t, b_t)
        ref = (a.double() @ b.double()).float()
        _close(product(a, b), ref, K)
        out = torch.randn(M, N)
        start = out.clone()
        _close(product(a, b, out, accumulate=True), start + ref, K)
    finally:
        torch.set_num_threads(before)


def test_product_writes_into_a_strided_out_and_batches():
    a, b = torch.randn(3, 22, 40), torch.randn(3, 40, 70)
    _close(product(a, b), torch.bmm(a, b), 40)
    wide = torch.full((22, 100), 7.0)
    product(a[1], b[1], wide[:, 10:80])  # row stride 100: only its 70 columns written
    _close(wide[:, 10:80], a[1] @ b[1], 40)
    assert (wide[:, :10] == 7).all() and (wide[:, 80:] == 7).all()
    expanded = torch.randn(1, 40).expand(22, 40)  # a zero stride
    _close(product(expanded, b[0]), expanded.contiguous() @ b[0], 40)


def test_empty_inner_dimension_gives_zeros():
    out = product(torch.randn(4, 0), torch.randn(0, 5))
    assert out.shape == (4, 5) and (out == 0).all()


def test_other_dtypes_run_torch():
    a, b = torch.randn(5, 6, dtype=torch.float64), torch.randn(6, 7, dtype=torch.float64)
    assert torch.equal(product(a, b), a @ b)


def _grads(fn, *tensors):
    tensors = [t.detach().clone().requires_grad_(True) for t in tensors]
    out = fn(*tensors)
    weights = torch.linspace(-1, 1, out.numel()).reshape(out.shape)
    (out * weights).sum().backward()
    return [out.detach()] + [t.grad for t in tensors]


CASES = {
    "mm": (lambda a, w: torch.mm(a, w.t()), [(50, 30), (70, 30)]),
    "addmm": (lambda b, a, w: torch.addmm(b, a, w.t()), [(70,), (50, 30), (70, 30)]),
    "addmm-2d-bias": (lambda b, a, w: torch.addmm(b, a, w), [(50, 70), (50, 30), (30, 70)]),
    "bmm": (lambda a, w: torch.bmm(a, w.transpose(1, 2)), [(3, 50, 30), (3, 70, 30)]),
    "baddbmm": (lambda b, a, w: torch.baddbmm(b, a, w.transpose(1, 2)), [(3, 1, 70), (3, 50, 30), (3, 70, 30)]),
    "linear": (lambda x, w, b: F.linear(x, w, b), [(5, 10, 30), (70, 30), (70,)]),
    "linear-no-bias": (lambda x, w: F.linear(x, w), [(50, 30), (70, 30)]),
}


def _uses_kernel(out: torch.Tensor) -> bool:
    seen, todo = set(), [out.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if fn.name() == "_ProductBackward":
            return True
        todo.extend(f for f, _ in fn.next_functions)
    return False


@pytest.mark.parametrize("case", CASES)
def test_fast_products_and_their_gradients_equal_torch(case):
    fn, shapes = CASES[case]
    g = torch.Generator().manual_seed(2)
    tensors = [torch.randn(*s, generator=g) for s in shapes]
    ref = _grads(fn, *tensors)

    def fast(*ts):
        with fast_products():
            out = fn(*ts)
        assert _uses_kernel(out)  # the kernel's, not torch's
        return out

    for got, want in zip(_grads(fast, *tensors), ref, strict=True):
        _close(got, want, 70)


def test_fast_products_pass_everything_else_to_torch():
    a = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    with fast_products():
        out = torch.mm(a, a.t())  # float64: torch's
        scaled = torch.addmm(torch.zeros(4, 4), a.float(), a.float().t(), alpha=2.0)  # alpha: torch's
    assert out.grad_fn.name() == "MmBackward0"
    assert scaled.grad_fn.name() == "AddmmBackward0"
    torch.testing.assert_close(scaled, 2 * (a.float() @ a.float().t()))


@pytest.mark.parametrize("bias_shape", [(70,), (22, 70), (1, 70), "transposed"])
def test_product_starts_from_a_bias(bias_shape):
    a, b = torch.randn(22, 200), torch.randn(200, 70)
    bias = torch.randn(70, 22).t() if bias_shape == "transposed" else torch.randn(*bias_shape)
    _close(product(a, b, bias=bias), bias + a @ b, 200)
    batched = torch.randn(3, 1, 70)
    _close(product(a.expand(3, 22, 200), b.expand(3, 200, 70), bias=batched), batched + a @ b, 200)
