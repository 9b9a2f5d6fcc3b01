"""Exponential moving average of the generator, and BatchNorm statistics that match the averaged weights."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def ema_decay_at(step: int, decay: float, ramp: float = 10.0) -> float:
    """The decay for iteration `step`: ramps up as (1 + step) / (ramp + step) until it reaches `decay`.

    A constant 0.9999 averages over ~10k iterations, so for the first thousands of iterations the
    EMA generator would still be mostly its random initialisation; the ramp lets it follow early
    training, averaging over about the last step / (ramp - 1) iterations (a ninth of the run with
    the default 10), and changes nothing in long runs (it reaches 0.9999 after ~90k iterations).
    """
    return min(decay, (1.0 + step) / (ramp + step))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for parameters; buffers (spectral-norm vectors) are copied.

    Averaged BatchNorm running statistics would not describe the averaged weights, so they are
    re-estimated by `refresh_batchnorm` before the EMA generator is used or saved.
    """
    ema_p = [p for p in ema.parameters()]
    model_p = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(ema_p, model_p, 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)


@torch.no_grad()
def refresh_batchnorm(model: nn.Module, inputs: Iterable[tuple]) -> int:
    """Re-estimate every BatchNorm's running statistics as the plain average over `inputs` batches.

    Only the BatchNorm layers run in training mode (spectral norm keeps its vectors). Returns the
    number of batches used; the model is left in eval mode.
    """
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    model.eval()
    if not bns:
        return 0
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    n = 0
    try:
        for args in inputs:
            model(*args)
            n += 1
    finally:
        for m, mom in zip(bns, momenta, strict=True):
            m.momentum = mom
        model.eval()
    return n
