"""Pooling strategies against hand-computed values, with padding that would show if it leaked."""

from __future__ import annotations

import pytest
import torch

from evalkit.encoders.pooling import POOLINGS

PAD = 1000.0  # a padding value large enough to dominate any pooled vector it leaks into


def hidden_and_mask(left_padding: bool = False) -> tuple[list[torch.Tensor], torch.Tensor]:
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    b = torch.tensor([[1.0, 1.0], [3.0, 3.0], [PAD, -PAD]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    if left_padding:
        b = torch.tensor([[PAD, -PAD], [1.0, 1.0], [3.0, 3.0]])
        mask = torch.tensor([[1, 1, 1], [0, 1, 1]])
    last = torch.stack([a, b])
    embeddings = torch.full_like(last, 7.0)
    first_layer = 2 * last  # so first_last_avg = 1.5 × last layer on real tokens
    return [embeddings, first_layer, last], mask


EXPECTED = {
    "mean": [[3.0, 4.0], [2.0, 2.0]],
    "cls": [[1.0, 2.0], [1.0, 1.0]],
    "max": [[5.0, 6.0], [3.0, 3.0]],
    "first_last_avg": [[4.5, 6.0], [3.0, 3.0]],
    "weighted_mean": [[22 / 6, 28 / 6], [7 / 3, 7 / 3]],
    "last_token": [[5.0, 6.0], [3.0, 3.0]],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("left_padding", [False, True])
def test_pooling_matches_hand_computed_values(name: str, left_padding: bool) -> None:
    hidden, mask = hidden_and_mask(left_padding)
    pooled = POOLINGS.get(name).fn(hidden, mask, -1)
    assert torch.allclose(pooled, torch.tensor(EXPECTED[name]), atol=1e-6), pooled


def test_layer_selects_hidden_state() -> None:
    hidden, mask = hidden_and_mask()
    assert torch.allclose(POOLINGS.get("mean").fn(hidden, mask, 0), torch.full((2, 2), 7.0))
    assert torch.allclose(POOLINGS.get("mean").fn(hidden, mask, 1), 2 * torch.tensor(EXPECTED["mean"]))


def test_all_six_strategies_are_declared() -> None:
    assert set(POOLINGS.names()) == set(EXPECTED)
