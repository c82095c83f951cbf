"""Losses computed by hand on small tensors: adaptive threshold (ATLOP), binary focal, InfoNCE."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hiere.losses import adaptive_threshold_loss, adaptive_threshold_scores, binary_focal_loss, info_nce


def test_adaptive_threshold_loss_by_hand() -> None:
    # columns: TH, r1, r2, r3; pair 0 holds r1 and r3, pair 1 has no relation
    logits = torch.tensor([[0.5, 2.0, -1.0, 1.0], [1.0, 0.0, 2.0, -1.0]])
    labels = torch.tensor([[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    # pair 0, L1 over {TH, r1, r3}: -log p(r1) - log p(r3); L2 over {TH, r2}: -log p(TH)
    z1 = math.exp(0.5) + math.exp(2.0) + math.exp(1.0)
    pair0 = -math.log(math.exp(2.0) / z1) - math.log(math.exp(1.0) / z1)
    pair0 += -math.log(math.exp(0.5) / (math.exp(0.5) + math.exp(-1.0)))
    # pair 1, L1 = 0 (no positive); L2 over every class
    pair1 = -math.log(math.exp(1.0) / (math.exp(1.0) + math.exp(0.0) + math.exp(2.0) + math.exp(-1.0)))
    loss = adaptive_threshold_loss(logits, labels)
    assert abs(loss.item() - (pair0 + pair1) / 2) < 1e-5


def test_adaptive_threshold_loss_leaves_inputs_and_pushes_positives_above_threshold() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0]], requires_grad=True)
    labels = torch.tensor([[0.0, 1.0, 0.0]])
    logits_before, labels_before = logits.detach().clone(), labels.clone()
    adaptive_threshold_loss(logits, labels).backward()
    assert torch.equal(logits.detach(), logits_before) and torch.equal(labels, labels_before)
    gradient = logits.grad[0]
    assert gradient[1] < 0  # the positive relation goes up
    assert gradient[2] > 0  # the negative relation goes down


def test_adaptive_threshold_scores_and_top_k() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0], [2.0, 1.0, 0.5, -1.0]])
    scores = adaptive_threshold_scores(logits)
    assert torch.allclose(scores[:, 1:], torch.tensor([[2.0, 1.0, -1.0], [-1.0, -1.5, -3.0]]))
    assert torch.allclose(scores[:, 0], torch.tensor([-2.0, 1.0]))  # TH - best relation
    top1 = adaptive_threshold_scores(logits, top_k=1)
    assert top1[0, 1] == 2.0 and top1[0, 2] < 0  # only the best relation stays above the threshold
    assert (top1[1, 1:] < 0).all()


def test_binary_focal_loss_by_hand() -> None:
    logits = torch.tensor([0.0, 2.0])
    targets = torch.tensor([1.0, 0.0])
    p = 1 / (1 + math.exp(-2.0))
    expected = (0.25 * math.log(2.0) + p**2 * -math.log(1 - p)) / 2  # (1-p_t)^2 * -log p_t
    assert abs(binary_focal_loss(logits, targets, gamma=2.0).item() - expected) < 1e-6
    # gamma = 0 is binary cross-entropy; alpha weights positives by alpha, negatives by 1 - alpha
    bce = F.binary_cross_entropy_with_logits(logits, targets)
    assert abs(binary_focal_loss(logits, targets, gamma=0.0).item() - bce.item()) < 1e-6
    weighted = (0.25 * math.log(2.0) + 0.75 * -math.log(1 - p)) / 2
    assert abs(binary_focal_loss(logits, targets, gamma=0.0, alpha=0.25).item() - weighted) < 1e-6


def test_info_nce_by_hand() -> None:
    anchor = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    positive = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    # cosine similarities: row 0 -> [1, 1/sqrt2], row 1 -> [0, 1/sqrt2]; temperature 0.5
    s = 1 / math.sqrt(2)
    row0 = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(2 * s)))
    row1 = -math.log(math.exp(2 * s) / (math.exp(0.0) + math.exp(2 * s)))
    assert abs(info_nce(anchor, positive, temperature=0.5).item() - (row0 + row1) / 2) < 1e-5
