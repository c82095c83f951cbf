"""Losses shared by the models: adaptive-threshold (ATLOP), binary focal (KMGRE), InfoNCE (HiCLRE),
evidence KL (DREEAM's evidence guidance, an option of ATLOP and KMGRE).

None of them edits its inputs in place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_NEG = -1e30  # "minus infinity" that stays finite under bf16/fp16 casts to float


def adaptive_threshold_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ATLOP adaptive-threshold loss (Zhou et al. 2021, eqs. 10-11); column 0 is the threshold class TH.

    ``logits``: ``(n_pairs, n_classes)``; ``labels``: multi-hot ``(n_pairs, n_classes)`` with
    ``labels[:, 0] = 1`` iff the pair has no relation (column 0 of the labels is ignored: TH is never a
    positive class of the first term).

    L1 = -sum_{r in P_T} log softmax over (P_T ∪ {TH}) at r   (positives above TH)
    L2 = -log softmax over (N_T ∪ {TH}) at TH                  (TH above negatives)
    Returns the mean of L1 + L2 over pairs.
    """
    logits = logits.float()
    positive = labels.float().clone()
    positive[:, 0] = 0.0  # (n_pairs, n_classes): P_T
    threshold = torch.zeros_like(positive)
    threshold[:, 0] = 1.0
    negative = 1.0 - positive  # N_T ∪ {TH}
    # eq. 10: classes outside P_T ∪ {TH} are masked out of the softmax
    logits_positive = logits.masked_fill((positive + threshold) == 0, _NEG)
    loss_positive = -(F.log_softmax(logits_positive, dim=-1) * positive).sum(dim=-1)
    # eq. 11: classes outside N_T ∪ {TH} (the positives) are masked out
    logits_negative = logits.masked_fill(negative == 0, _NEG)
    loss_negative = -(F.log_softmax(logits_negative, dim=-1) * threshold).sum(dim=-1)
    return (loss_positive + loss_negative).mean()


def adaptive_threshold_scores(logits: torch.Tensor, top_k: int | None = None) -> torch.Tensor:
    """Scores for the ``"adaptive"`` decision: ``logit_r - logit_TH`` (predicted when >= 0).

    Column 0 becomes ``logit_TH - max_r logit_r`` (positive when the pair has no relation). With
    ``top_k``, only the k highest relations of a pair can be positive (ATLOP's inference option); the
    others are pushed just below 0 so their order is kept but they are not predicted.
    """
    logits = logits.float()
    scores = logits - logits[:, :1]  # (n_pairs, n_classes)
    relation_scores = scores[:, 1:]
    if top_k is not None and 0 < top_k < relation_scores.shape[1]:
        kth = relation_scores.topk(top_k, dim=-1).values[:, -1:]
        outside = relation_scores < kth
        relation_scores = torch.where(outside, relation_scores.clamp(max=0.0) - 1e-4, relation_scores)
    na_score = -relation_scores.max(dim=-1, keepdim=True).values
    return torch.cat([na_score, relation_scores], dim=-1)


def binary_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0, alpha: float | None = None
) -> torch.Tensor:
    """Binary focal loss (Lin et al. 2017) on logits; mean over elements.

    FL(p_t) = -alpha_t (1 - p_t)^gamma log p_t with p_t = p for target 1 and 1 - p for target 0;
    ``alpha=None`` means no class weighting (alpha_t = 1).
    """
    logits = logits.float()
    targets = targets.float()
    log_p = F.logsigmoid(logits)
    log_not_p = F.logsigmoid(-logits)
    log_p_t = targets * log_p + (1.0 - targets) * log_not_p
    p_t = log_p_t.exp()
    loss = -((1.0 - p_t) ** gamma) * log_p_t
    if alpha is not None:
        loss = loss * (targets * alpha + (1.0 - targets) * (1.0 - alpha))
    return loss.mean() if loss.numel() else logits.sum() * 0.0


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """InfoNCE with in-batch negatives (van den Oord et al. 2018): ``anchor[i]``'s positive is
    ``positive[i]``, every ``positive[j != i]`` is a negative. Cosine similarity / temperature; mean over i.

    ``anchor``, ``positive``: ``(batch, dim)``.
    """
    anchor = F.normalize(anchor.float(), dim=-1)
    positive = F.normalize(positive.float(), dim=-1)
    similarity = anchor @ positive.T / temperature  # (batch, batch)
    targets = torch.arange(similarity.shape[0], device=similarity.device)
    return F.cross_entropy(similarity, targets)


def evidence_kl_loss(sentence_mass: torch.Tensor, evidence: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """DREEAM's evidence guidance (Ma et al., EACL 2023): KL(v || p), mean over pairs with gold evidence.

    ``sentence_mass``: ``(n_pairs, n_sents)`` the localized-context attention a(s,o) (ATLOP eq. 7)
    summed per sentence; ``evidence``: ``(n_pairs, n_sents)`` 0/1, the sentences that are evidence of
    any gold relation of the pair. Both are normalised over sentences (p = mass / sum, v = evidence / |v|);
    pairs without evidence (and padded sentences, evidence 0) add nothing. 0 (with a gradient path)
    when no pair has evidence.
    """
    rows = evidence.sum(dim=-1) > 0
    if not bool(rows.any()):
        return sentence_mass.sum() * 0.0
    mass = sentence_mass[rows].float()
    target = evidence[rows].float()
    target = target / target.sum(dim=-1, keepdim=True)
    p = mass / mass.sum(dim=-1, keepdim=True).clamp_min(eps)
    kl = target * (torch.log(target.clamp_min(eps)) - torch.log(p.clamp_min(eps)))
    return kl.sum(dim=-1).mean()
