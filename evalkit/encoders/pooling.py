"""Pooling strategies, declared as data.

Each strategy maps (hidden states of every layer, attention mask, chosen layer)
to one vector per text. Every one of them reads the mask, so padding tokens never
reach a pooled vector whatever the padding side.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from evalkit.registry import Registry

Hidden = Sequence[torch.Tensor]  # (n_layers + 1) tensors of shape (batch, seq, dim); index 0 = embeddings


@dataclass(frozen=True)
class Pooling:
    name: str
    fn: Callable[[Hidden, torch.Tensor, int], torch.Tensor]
    description: str


POOLINGS: Registry[Pooling] = Registry("pooling strategy")


def _declare(name: str, description: str) -> Callable[[Callable[[Hidden, torch.Tensor, int], torch.Tensor]], Pooling]:
    def wrap(fn: Callable[[Hidden, torch.Tensor, int], torch.Tensor]) -> Pooling:
        pooling = Pooling(name, fn, description)
        POOLINGS.register(name, pooling)
        return pooling

    return wrap


def _mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.unsqueeze(-1).to(like.dtype)


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = _mask(mask, states)
    return (states * m).sum(1) / m.sum(1).clamp(min=1e-9)


@_declare("mean", "average of the token vectors (sentence-transformers' default)")
def _mean(hidden: Hidden, mask: torch.Tensor, layer: int) -> torch.Tensor:
    return masked_mean(hidden[layer], mask)


@_declare("cls", "the first token's vector ([CLS] / <s>)")
def _cls(hidden: Hidden, mask: torch.Tensor, layer: int) -> torch.Tensor:
    first = mask.float().argmax(dim=1)  # first real token (0 with right padding)
    return hidden[layer][torch.arange(mask.shape[0], device=mask.device), first]


@_declare("max", "element-wise maximum over the real tokens")
def _max(hidden: Hidden, mask: torch.Tensor, layer: int) -> torch.Tensor:
    states = hidden[layer]
    fill = torch.finfo(states.dtype).min
    return states.masked_fill(~mask.bool().unsqueeze(-1), fill).max(dim=1).values


@_declare("first_last_avg", "mean pooling of the average of the first transformer layer and the chosen layer")
def _first_last(hidden: Hidden, mask: torch.Tensor, layer: int) -> torch.Tensor:
    return masked_mean((hidden[1] + hidden[layer]) / 2, mask)


@_declare("weighted_mean", "position-weighted mean: later tokens weigh more (SGPT)")
def _weighted(hidden: Hidden, mask: torch.Tensor, layer: int) -> torch.Tensor:
    states = hidden[layer]
    positions = mask.long().cumsum(dim=1) * mask.long()  # 1..n over real tokens, 0 on padding
    weights = positions.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


@_declare("last_token", "the last real token's vector (decoder models)")
def _last(hidden: Hidden, mask: torch.Tensor, layer: int) -> torch.Tensor:
    seq = mask.shape[1]
    last = seq - 1 - mask.flip(dims=[1]).float().argmax(dim=1)
    return hidden[layer][torch.arange(mask.shape[0], device=mask.device), last]


def names() -> list[str]:
    return POOLINGS.names()
