"""What the loop tests compare: a layer's outputs, final states and the gradients of one
loss reading both, w.r.t. the input, the initial states and every parameter."""

import torch


def outputs_and_gradients(layer, x, states) -> list[torch.Tensor]:
    x = x.clone().requires_grad_(True)
    states = tuple(s.clone().requires_grad_(True) for s in states)
    out, final = layer(x, states)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    loss = (out * weights).sum() + sum((s * 0.3).sum() for s in final)
    params = list(layer.parameters())
    grads = torch.autograd.grad(loss, [x, *states, *params], allow_unused=True)
    grads = [torch.zeros_like(t) if gr is None else gr for gr, t in zip(grads, [x, *states, *params], strict=True)]
    return [out.detach(), *[s.detach() for s in final], *grads]
