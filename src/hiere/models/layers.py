"""Small layers shared by several models."""

from __future__ import annotations

import math

import torch
from torch import nn


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis restricted to ``mask`` (the two broadcast together); positions outside it get
    weight 0, and a row with no position inside it is all zeros (not NaN)."""
    scores, mask = torch.broadcast_tensors(scores, mask)
    return torch.softmax(scores.masked_fill(~mask, torch.finfo(scores.dtype).min), dim=-1) * mask


class Bilinear(nn.Module):
    """``y_o = x1ᵀ W_o x2 + b_o`` like :class:`torch.nn.Bilinear`, computed with one matmul.

    ``torch.nn.Bilinear``'s CPU backward is orders of magnitude slower for thousands of entity pairs;
    here ``x1 @ W`` is a plain matmul (n, in1) x (in1, out * in2) followed by a batched dot with x2.
    """

    def __init__(self, in1: int, in2: int, out: int, bias: bool = True):
        super().__init__()
        self.in1, self.in2, self.out = in1, in2, out
        self.weight = nn.Parameter(torch.empty(out, in1, in2))
        self.bias = nn.Parameter(torch.zeros(out)) if bias else None
        bound = 1 / math.sqrt(in1)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """x1 (n, in1), x2 (n, in2) -> (n, out)."""
        weight = self.weight.permute(1, 0, 2).reshape(self.in1, self.out * self.in2)  # (in1, out * in2)
        projected = (x1 @ weight).view(-1, self.out, self.in2)  # (n, out, in2)
        scores = torch.bmm(projected, x2.unsqueeze(-1)).squeeze(-1)  # (n, out)
        return scores + self.bias if self.bias is not None else scores


class EntityPairBilinear(nn.Module):
    """``Bilinear([e_h; M(d_ht)], [e_t; M(d_th)])`` for every candidate pair, without per-pair products.

    The weight splits into entity/distance blocks, ``x1ᵀ W x2 = e_hᵀ W_ee e_t + e_hᵀ W_ed m_t
    + m_hᵀ W_de e_t + m_hᵀ W_dd m_t``; each block is computed once per (entity, entity), (entity,
    bucket) or (bucket, bucket) and gathered per pair. The result equals :class:`Bilinear` on the
    concatenations (a test checks it) at a small fraction of the cost: a document has ~E² pairs but only
    E entities and a handful of distance buckets.
    """

    def __init__(self, entity_dim: int, distance_dim: int, out: int):
        super().__init__()
        self.entity_dim, self.distance_dim = entity_dim, distance_dim
        self.bilinear = Bilinear(entity_dim + distance_dim, entity_dim + distance_dim, out)

    def forward(
        self,
        entities: torch.Tensor,  # (batch, n_entities, entity_dim)
        distances: torch.Tensor,  # (n_buckets, distance_dim): the distance embedding table
        pair_doc: torch.Tensor,  # (n_pairs,)
        pair_h: torch.Tensor,
        pair_t: torch.Tensor,
        distance_ht: torch.Tensor,  # (n_pairs,) bucket of the head side
        distance_th: torch.Tensor,  # (n_pairs,) bucket of the tail side
    ) -> torch.Tensor:
        """-> (n_pairs, out)."""
        e = self.entity_dim
        weight = self.bilinear.weight  # (out, e + d, e + d)
        w_ee, w_ed = weight[:, :e, :e], weight[:, :e, e:]
        w_de, w_dd = weight[:, e:, :e], weight[:, e:, e:]
        ent_ent = torch.einsum("bhi,oij,btj->bhto", entities, w_ee, entities)  # (batch, E, E, out)
        ent_dist = torch.einsum("bhi,oij,kj->bhko", entities, w_ed, distances)  # (batch, E, buckets, out)
        dist_ent = torch.einsum("ki,oij,btj->bkto", distances, w_de, entities)  # (batch, buckets, E, out)
        dist_dist = torch.einsum("ki,oij,lj->klo", distances, w_dd, distances)  # (buckets, buckets, out)
        scores = (
            ent_ent[pair_doc, pair_h, pair_t]
            + ent_dist[pair_doc, pair_h, distance_th]
            + dist_ent[pair_doc, distance_ht, pair_t]
            + dist_dist[distance_ht, distance_th]
        )
        return scores + self.bilinear.bias
