"""Small models and one training loop, shared by the claims."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .core import Context


def mlp(in_features: int, hidden: int, out_features: int, depth: int = 2) -> nn.Sequential:
    """A ReLU multi-layer perceptron with ``depth`` hidden layers."""
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def fit(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    ctx: Context,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    stream: int = 0,
    desc: str = "epochs",
) -> list[float]:
    """Adam on shuffled mini-batches (seeded by ``ctx`` and ``stream``); returns the mean
    training loss of each epoch."""
    model.to(ctx.device).train()
    x, y = x.to(ctx.device), y.to(ctx.device)
    g = ctx.generator(stream)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = []
    for _ in ctx.steps(range(epochs), desc, total=epochs):
        order = torch.randperm(len(x), generator=g).to(ctx.device)
        total, count = 0.0, 0
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        history.append(total / count)
    return history


@torch.no_grad()
def logits_of(model: nn.Module, x: Tensor, ctx: Context) -> Tensor:
    """The model's outputs in eval mode, on the CPU."""
    model.eval()
    return model(x.to(ctx.device)).cpu()


def accuracy(logits: Tensor, y: Tensor) -> float:
    return float((logits.argmax(1) == y).float().mean())
