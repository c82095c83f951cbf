"""The shared layers of hiere.models.layers, checked against values computed by hand."""

from __future__ import annotations

import math

import torch

from hiere.models.layers import masked_softmax


def test_masked_softmax_spreads_weight_over_the_mask_only_and_an_empty_row_is_zeros():
    scores = torch.tensor([[0.0, math.log(3.0), 5.0], [1.0, 2.0, 3.0]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    weights = masked_softmax(scores, mask)
    assert torch.allclose(weights[0], torch.tensor([0.25, 0.75, 0.0]))
    assert torch.equal(weights[1], torch.zeros(3))  # no member: zeros, not NaN


def test_masked_softmax_broadcasts_the_mask_like_the_bag_queries_do():
    scores = torch.randn(2, 4, 5)  # (bags, queries, sentences)
    membership = torch.tensor([[True, True, False, False, False], [False, False, True, True, True]]).unsqueeze(1)
    weights = masked_softmax(scores, membership)
    assert weights.shape == (2, 4, 5)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4))
    assert torch.allclose(weights[0, :, :2], torch.softmax(scores[0, :, :2], dim=-1))
    assert torch.equal(weights[1, :, :2], torch.zeros(4, 2))
