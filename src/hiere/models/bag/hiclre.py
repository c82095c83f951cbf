"""HiCLRE: hierarchical contrastive learning for distantly supervised RE (Li et al., ACL 2022).

Backbone = :class:`~hiere.models.bag.bert_att.BertAtt` (eqs. 1-8). Three levels per bag, aligned by sentence:

* entity level ``h_E`` — one vector per sentence, the mean of its head and tail entity vectors (eq. 2 is fed
  ``h_E ± h_D`` with ``h_D = (h_e1 - h_e2) / 2``, i.e. exactly ``h_e1`` and ``h_e2``, so the task loss has a
  gradient with respect to ``h_E``);
* sentence level ``h_S`` (eq. 2);
* bag level ``h_B = Σ_i α_i h_Si`` (eq. 3); inside the recontextualization the bag is the sequence of its
  sentences' shares ``b_i = α_i h_Si`` (which sum to ``h_B``), so that attention over it is not trivial.

**Multi-granularity recontextualization** (Sec. 3.3, :class:`LevelRecontextualization`): for each level a
multi-head attention ``Att(Q, K, V) = softmax(QKᵀ/√d_k) V`` (eq. 9) whose value is that level and whose query
and key come from the other two levels (query = the finer one, footnote 4), masked to the sentences of the
same bag, then a position-wise MLP (eq. 10) and ``σ([h ‖ h'] W_att) + b_att`` (eq. 11, ``σ = tanh``):

* ``h_E_att`` from ``Att(h_S, b, h_E)``; ``h_S_att`` from ``Att(h_E, b, h_S)``;
* ``h'_B = MLP(Σ_i Att(h_E_att, h_S_att, b)_i)`` (eq. 10, pooled over the bag as ``h_B = Σ_i b_i``),
  ``h_B_att = σ([h_B ‖ h'_B] W_att) + b_att`` (eq. 11).

The enhanced levels replace the originals downstream: the bag level reads the enhanced entity and sentence
levels, the classifier (eqs. 6-8) reads ``h_B_att`` and the contrastive losses use all three.

**Dynamic gradient adversarial perturbation** (Sec. 3.4) per level ``x`` (rows: sentences, or bags):
``g = ∇_x L_task`` (eq. 12, one extra backward through the small head only, never through the encoder),
``pt_adv = ε g / ‖g‖`` (eq. 13, row-wise norm) ``+ ((T - u) / T) · cos(rep_u, rep_{u-1})`` (eqs. 14-15: the
inertia weight, a scalar per row added to every component, from the example's representation stored in the
previous epoch; 0 in the first epoch). The pseudo-positive is ``x + pt_adv`` (``pt_adv`` is a constant) and
``L^info = InfoNCE(x, x + pt_adv)`` with the other rows of the batch as negatives and temperature ``τ``
(eq. 16; :func:`hiere.losses.info_nce`, whose denominator also holds the positive and whose negatives are the
other rows' pseudo-positives — the usual InfoNCE form). Total (eq. 17):
``L = λ1 L_en + λ2 L_sen + λ3 L_bag + λ4 L_task``.

Memory: one row per training bag (bag level) and per training sentence (entity and sentence levels), float
buffers sized by the training set (``resources.extra``) plus the epoch each row was written; a feature carries
its bag's slot, found by the bag key (head id, tail id, relations) at featurization. ``u`` is the trainer
epoch (:meth:`on_epoch_start`); ``T`` is ``model.total_epochs`` when set, else ``trainer.epochs``.

Two readings (``recipe``): ``paper`` (the default) is the text above. ``released`` follows the authors' code
(MatNLP/HiCLRE, ``hiclre/model/bag_attention.py`` and ``hiclre/framework/bag_re.py``) where it differs from
the text: loss weights 0.4 task / 0.4 bag / 0.1 · ¼ sentence / 0.1 · ¼ entity, i.e. ``lambdas`` (entity,
sentence, bag, task) = [0.025, 0.025, 0.4, 0.4], and τ = 0.75 (paper: λ = 0.4/0.4/0.1/0.1 with the task loss
at 0.1, τ = 0.05); the recontextualization has no parameters — each level adds an unscaled, unprojected
``softmax(QKᵀ) V`` (same query/key/value levels) as a residual, and the bag level is the mean of the
enhanced shares and a fresh selective attention over the enhanced sentences — and it runs in training only
(inference is BERT+ATT's); eq. 13 divides the gradient by the norm of the whole batch's gradient, not each
row's. Explicit ``lambdas`` / ``temperature`` override either recipe.

Ablations (Table 3): ``recontextualization: false`` (-Multi-Gra. Recontext.), ``contrastive: false``
(-Three-level CL), ``{entity,sentence,bag}_{gradient,memory}: false`` (-gradient / -memory per level).
Explanations: per relation, the selective attention over the sentences and the bag level's cross-level
attention folded onto the sentences (how much each sentence's share reaches ``h'_B``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hiere.data.bags import Bag
from hiere.data.relations import RelationMap
from hiere.errors import HiereConfigError
from hiere.losses import info_nce
from hiere.models.bag.bert_att import BertAtt, BertAttConfig, group_scores
from hiere.models.bag.common import (
    all_query_attention,
    attention_explanations,
    bag_membership,
    selective_attention,
    training_groups,
)
from hiere.models.base import Resources

LEVELS = ("entity", "sentence", "bag")
RECIPES = {  # recipe -> (lambdas [entity, sentence, bag, task], temperature)
    "paper": ([0.4, 0.4, 0.1, 0.1], 0.05),  # eq. 17 and Sec. 4.2
    "released": ([0.1 / 4, 0.1 / 4, 0.4, 0.4], 0.75),  # the authors' code (bag_re.py)
}
RELATION_CHUNK = 8  # relations recontextualized at once at inference (bounds the (n_sent, n_sent) maps)


@dataclass
class HiCLREConfig(BertAttConfig):
    recipe: str = "paper"  # paper | released (the authors' code; see the module docstring)
    recontextualization: bool = True  # Sec. 3.3; false = Table 3 "-Multi-Gra. Recontext."
    heads: int = 4  # heads of each level's cross-level attention (eq. 9)
    mlp_ratio: int = 4  # position-wise MLP width / d (eq. 10)
    contrastive: bool = True  # Sec. 3.4; false = Table 3 "-Three-level CL"
    temperature: float | None = None  # τ of eq. 16; None: the recipe's (paper 0.05, released 0.75)
    lambdas: list[float] | None = None  # λ1..λ4 of eq. 17; None: the recipe's (see RECIPES)
    epsilon: float = 2.0  # ε of eq. 13 (paper)
    total_epochs: int | None = None  # T of eq. 14 (the paper trains 5 epochs); None: trainer.epochs
    entity_gradient: bool = True  # eq. 13 term at the entity level
    entity_memory: bool = True  # eq. 14 term at the entity level
    sentence_gradient: bool = True
    sentence_memory: bool = True
    bag_gradient: bool = True
    bag_memory: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.recipe not in RECIPES:
            raise HiereConfigError(f"model.recipe must be one of {tuple(RECIPES)}, got {self.recipe!r}")
        lambdas, temperature = RECIPES[self.recipe]
        if self.lambdas is None:
            self.lambdas = list(lambdas)
        if self.temperature is None:
            self.temperature = temperature
        if len(self.lambdas) != 4 or any(value < 0 for value in self.lambdas):
            raise HiereConfigError(f"model.lambdas must be 4 non-negative weights (eq. 17), got {self.lambdas!r}")
        if self.temperature <= 0:
            raise HiereConfigError(f"model.temperature must be positive, got {self.temperature}")
        if self.total_epochs is not None and self.total_epochs < 1:
            raise HiereConfigError(f"model.total_epochs must be at least 1, got {self.total_epochs}")

    def uses(self, level: str, term: str) -> bool:
        """Whether ``term`` (``gradient`` or ``memory``) perturbs ``level``."""
        return self.contrastive and bool(getattr(self, f"{level}_{term}"))


class LevelRecontextualization(nn.Module):
    """One level of Sec. 3.3: multi-head cross-level attention (eq. 9), position-wise MLP (eq. 10), eq. 11."""

    def __init__(self, d: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.attention = nn.MultiheadAttention(d, heads, batch_first=True)  # eq. 9
        self.mlp = nn.Sequential(nn.Linear(d, mlp_ratio * d), nn.GELU(), nn.Linear(mlp_ratio * d, d))  # eq. 10
        self.W_att = nn.Linear(2 * d, d, bias=False)  # eq. 11
        self.b_att = nn.Parameter(torch.zeros(d))

    def attend(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, blocked: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 9: ``(views, n, d)`` each, ``blocked`` (n, n) or (views * heads, n, n) -> output, weights."""
        return self.attention(query, key, value, attn_mask=blocked, need_weights=True)

    def fuse(self, original: torch.Tensor, enhanced: torch.Tensor) -> torch.Tensor:
        """Eq. 11: ``σ([h ‖ h'] W_att) + b_att``."""
        return torch.tanh(self.W_att(torch.cat([original, enhanced], dim=-1))) + self.b_att

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, blocked: torch.Tensor
    ) -> torch.Tensor:
        attended, _ = self.attend(query, key, value, blocked)
        return self.fuse(value, self.mlp(attended))  # eqs. 10-11, position-wise


class HiCLRE(BertAtt):
    name = "hiclre"
    Config = HiCLREConfig

    def __init__(self, config: HiCLREConfig, resources: Resources):
        super().__init__(config, resources)
        d = self.hidden_size
        if config.pooling != "paper":
            raise HiereConfigError("model.pooling must be paper for hiclre: its levels are eq. 2's entity and "
                                   "sentence vectors")
        if d % config.heads:
            raise HiereConfigError(f"model.heads={config.heads} must divide the encoder's hidden size {d}")
        if config.recontextualization and config.recipe == "paper":
            self.entity_level = LevelRecontextualization(d, config.heads, config.mlp_ratio)
            self.sentence_level = LevelRecontextualization(d, config.heads, config.mlp_ratio)
            self.bag_level = LevelRecontextualization(d, config.heads, config.mlp_ratio)
        sizes = {
            "entity": int(resources.extra.get("n_memory_sentences", 0)),
            "sentence": int(resources.extra.get("n_memory_sentences", 0)),
            "bag": int(resources.extra.get("n_memory_bags", 0)),
        }
        for level in LEVELS:  # rep_(u-1) of eq. 14, bounded by the training set size
            if config.uses(level, "memory"):
                self.register_buffer(f"memory_{level}", torch.zeros(sizes[level], d))
                self.register_buffer(f"memory_{level}_epoch", torch.zeros(sizes[level], dtype=torch.long))
        self.epoch = 1  # u of eq. 14
        self.total_epochs = config.total_epochs or 1  # T of eq. 14; the trainer sets it (on_epoch_start)
        self.perturbation_seconds = 0.0  # time spent in the eq. 12 gradient pass (benchmarks read it)

    @classmethod
    def build_resources(cls, config: HiCLREConfig, train_examples: list[Bag], relations: RelationMap) -> Resources:
        """Memory slots of the training bags: ``bag key -> [bag slot, first sentence slot, n sentences]``."""
        slots, offset = {}, 0
        for index, bag in enumerate(train_examples):
            slots[bag_key(bag)] = [index, offset, bag.size]
            offset += bag.size
        extra = {"memory_slots": slots, "n_memory_bags": len(train_examples), "n_memory_sentences": offset}
        return Resources(relations, extra=extra)

    def on_epoch_start(self, epoch: int, total_epochs: int | None = None) -> None:
        """``u`` of eq. 14 is ``epoch``; ``T`` is ``model.total_epochs``, or ``total_epochs`` (the trainer's)."""
        self.epoch = epoch
        self.total_epochs = self.config.total_epochs or total_epochs or 1

    def featurize(self, example: Bag) -> dict[str, Any]:
        features = super().featurize(example)
        slot = self.resources.extra.get("memory_slots", {}).get(bag_key(example))
        if slot is not None and slot[2] == example.size:
            features["bag_slot"], features["sentence_slot"] = slot[0], slot[1]
        else:  # not a training bag: no memory
            features["bag_slot"], features["sentence_slot"] = -1, -1
        return features

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        features = self.sample_sentences(features)  # before the slots: a sampled bag keeps its sentences' slots
        batch = self.collate_sampled(features)
        batch["bag_slot"] = torch.tensor([f.get("bag_slot", -1) for f in features], dtype=torch.long)  # (n_bags,)
        sentence_slot = []
        for feature in features:
            first = feature.get("sentence_slot", -1)
            positions = feature.get("sentence_index", range(len(feature["sentences"])))
            sentence_slot.extend([first + i for i in positions] if first >= 0 else [-1] * len(positions))
        batch["sentence_slot"] = torch.tensor(sentence_slot, dtype=torch.long)  # (n_sent,)
        return batch

    # ---------------------------------------------------------------- recontextualization (Sec. 3.3)

    def recontextualize(
        self,
        h_E: torch.Tensor,
        h_S: torch.Tensor,
        h_B: torch.Tensor,
        alpha: torch.Tensor,
        blocked: torch.Tensor,
        pool: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eqs. 9-11 on ``views`` bag readings at once (training: one per group; inference: one per relation).

        ``h_E``, ``h_S`` (n_sent, d), or (views, n_sent, d) when each view has its own rows (training: a group's
        sentences, :func:`pack_groups`); ``alpha`` (views, n_sent) of eq. 4; ``h_B`` (views, n_bags, d);
        ``blocked`` attention mask (True = other bag); ``pool`` (views, n_bags, n_sent) bag membership.
        -> ``h_E_att``, ``h_S_att`` (views, n_sent, d), ``h_B_att`` (views, n_bags, d), bag-level weights
        (views, n_sent, n_sent).
        """
        views = alpha.shape[0]
        E = h_E.expand(views, -1, -1)  # (views, n_sent, d)
        S = h_S.expand(views, -1, -1)
        b = alpha.unsqueeze(-1) * S  # (views, n_sent, d): each sentence's share of h_B (eq. 3)
        h_E_att = self.entity_level(S, b, E, blocked)  # V = entity level
        h_S_att = self.sentence_level(E, b, S, blocked)  # V = sentence level
        attended, weights = self.bag_level.attend(h_E_att, h_S_att, b, blocked)  # eq. 10 inner Att(h_e, h_S, h_B)
        h_B_prime = self.bag_level.mlp(torch.einsum("vpn,vnd->vpd", pool, attended))  # (views, n_bags, d)
        h_B_att = self.bag_level.fuse(h_B, h_B_prime)  # eq. 11
        return h_E_att, h_S_att, h_B_att, weights

    def levels(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encoder -> entity level ``h_E``, half-difference ``h_D``, sentence level ``h_S`` (n_sent, d)."""
        h_e1, h_e2, h_cls = self.encode(batch)
        h_E, h_D = (h_e1 + h_e2) / 2, (h_e1 - h_e2) / 2
        return h_E, h_D, self.sentence_representation(h_E + h_D, h_E - h_D, h_cls)  # eq. 2

    def released_recontextualize(
        self, h_E: torch.Tensor, h_S: torch.Tensor, alpha: torch.Tensor, membership: torch.Tensor,
        labels: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``recipe: released``: the authors' parameter-free recontextualization, per training group.

        ``b = α h_S`` (the shares of eq. 3); ``b⁺ = b + A(h_S, h_E, b)``, ``h_S⁺ = h_S + A(b, h_E, h_S)``,
        ``h_E⁺ = h_E + A(b, h_S, h_E)`` with ``A(Q, K, V) = softmax(Q Kᵀ) V`` inside each group; the bag is
        ``(Σ b⁺ + Σ α⁺ h_S⁺) / 2`` with ``α⁺`` the gold query's selective attention over ``h_S⁺``.
        ``h_E``, ``h_S`` (n_sent, d) or (G, n_sent, d) (a group's own rows, :func:`pack_groups`),
        ``alpha``/``membership`` (G, n_sent) -> (G, n_sent, d) x2, (G, d).
        """
        allowed = membership.unsqueeze(2) & membership.unsqueeze(1)  # (G, n_sent, n_sent)
        allowed = allowed | torch.eye(membership.shape[1], dtype=torch.bool, device=allowed.device)

        def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
            logits = (query @ key.transpose(1, 2)).masked_fill(~allowed, float("-inf"))  # (G, n_sent, n_sent)
            return torch.softmax(logits, dim=-1) @ value

        views = alpha.shape[0]
        E, S = h_E.expand(views, -1, -1), h_S.expand(views, -1, -1)  # (G, n_sent, d)
        b = alpha.unsqueeze(-1) * S
        inside = membership.unsqueeze(-1).to(S.dtype)  # (G, n_sent, 1): only the group's own sentences count
        b_plus = (b + attend(S, E, b)) * inside
        S_plus = S + attend(b, E, S)
        E_plus = E + attend(b, S, E)
        queries = self.queries()[labels]  # (G, d)
        scores = torch.einsum("gd,gnd->gn", queries, S_plus).masked_fill(~membership, float("-inf"))
        alpha_plus = torch.softmax(scores, dim=-1)  # (G, n_sent)
        h_B = (b_plus.sum(1) + torch.einsum("gn,gnd->gd", alpha_plus, S_plus)) / 2  # (G, d)
        return E_plus, S_plus, h_B

    # ---------------------------------------------------------------- forward

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        if not self.training:
            return self.infer(batch)
        h_E, _, h_S = self.levels(batch)
        n_bags = batch["bag_labels"].shape[0]
        membership, labels, bag_rows = training_groups(batch, self.config.training_bags)  # (G, n_sent)
        h_B, alpha = selective_attention(self.queries()[labels], h_S, membership)  # eqs. 3-5
        if self.config.recontextualization:
            # each group reads only its own sentences: pack them to (G, m, d), m = the largest group, instead of
            # attending over the whole batch's n_sent rows with a mask (the same values; m / n_sent the memory)
            index, member = pack_groups(membership)  # (G, m)
            E, S = h_E[index], h_S[index]  # (G, m, d)
            shares = alpha.gather(1, index) * member  # (G, m): eq. 4's weights of the group's sentences
            if self.config.recipe == "released":
                level_E, level_S, level_B = self.released_recontextualize(E, S, shares, member, labels)
            else:
                allowed = member.unsqueeze(2) & member.unsqueeze(1)  # (G, m, m)
                allowed = allowed | torch.eye(member.shape[1], dtype=torch.bool, device=allowed.device)
                blocked = (~allowed).repeat_interleave(self.config.heads, dim=0)  # (G * heads, m, m)
                level_E, level_S, h_B_att, _ = self.recontextualize(
                    E, S, h_B.unsqueeze(1), shares, blocked, member.unsqueeze(1).to(h_S.dtype)
                )
                level_B = h_B_att.squeeze(1)  # (G, d)
            group_index, position = member.nonzero(as_tuple=True)  # rows of the entity/sentence levels
            sentence_index = index[group_index, position]
        else:
            level_E, level_S, level_B = h_E, h_S, h_B
            group_index = position = None
            sentence_index = torch.arange(h_S.shape[0], device=h_S.device)
        logits = self.classifier(self.dropout(level_B))  # (G, R), eq. 7
        task_loss = nn.functional.cross_entropy(logits.float(), labels)  # eq. 8
        output = {
            "scores": group_scores(logits, bag_rows, n_bags),
            "loss": task_loss,
            "loss_terms": {"task": task_loss.detach()},
        }
        if self.config.contrastive and torch.is_grad_enabled():
            dense = {"entity": level_E, "sentence": level_S, "bag": level_B}
            slots = {
                "entity": batch["sentence_slot"][sentence_index],
                "sentence": batch["sentence_slot"][sentence_index],
                "bag": batch["bag_slot"][bag_rows],
            }

            def rows(level: str, tensor: torch.Tensor) -> torch.Tensor:
                if level == "bag" or group_index is None:
                    return tensor
                return tensor[group_index, position]  # (n_member_rows, d)

            losses = self.contrastive_losses(dense, rows, slots, task_loss)
            weights = self.config.lambdas
            output["loss"] = (
                weights[0] * losses["entity"]
                + weights[1] * losses["sentence"]
                + weights[2] * losses["bag"]
                + weights[3] * task_loss
            )  # eq. 17
            output["loss_terms"].update({f"{level}_info_nce": value.detach() for level, value in losses.items()})
        return output

    # ---------------------------------------------------------------- perturbation (Sec. 3.4)

    def contrastive_losses(
        self,
        dense: dict[str, torch.Tensor],
        rows: Any,
        slots: dict[str, torch.Tensor],
        task_loss: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Eqs. 12-16 at the three levels -> ``{level: L^info}``."""
        wanted = [level for level in LEVELS if self.config.uses(level, "gradient")]
        gradients: dict[str, torch.Tensor] = {}
        if wanted:
            started = time.perf_counter()
            values = torch.autograd.grad(
                task_loss, [dense[level] for level in wanted], retain_graph=True, allow_unused=True
            )  # eq. 12: g = ∇ L_task, through the head only
            gradients = {
                level: torch.zeros_like(dense[level]) if g is None else g
                for level, g in zip(wanted, values, strict=True)
            }
            self.perturbation_seconds += time.perf_counter() - started
        losses = {}
        for level in LEVELS:
            anchor = rows(level, dense[level]).float()  # (n_rows, d)
            perturbation = torch.zeros_like(anchor)
            if level in gradients:
                g = rows(level, gradients[level]).float()
                perturbation = perturbation + self.config.epsilon * normalise_gradient(g, self.config.recipe)
            if self.config.uses(level, "memory"):
                perturbation = perturbation + self.inertia_weight(level, anchor.detach(), slots[level])  # eq. 15
            positive = anchor + perturbation.detach()  # pseudo-positive h' = h + pt_adv
            losses[level] = info_nce(anchor, positive, self.config.temperature)  # eq. 16
        return losses

    def inertia_weight(self, level: str, representation: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """Eq. 14: ``I_w = ((T - u) / T) · cos(rep_u, rep_{u-1})`` per row (n_rows, 1); stores ``rep_u``.

        Rows without a slot, or whose stored representation is not from epoch ``u - 1``, get 0.
        """
        memory, written = getattr(self, f"memory_{level}"), getattr(self, f"memory_{level}_epoch")
        u, T = self.epoch, self.total_epochs
        known = slots >= 0
        safe = slots.clamp_min(0)
        previous = memory[safe]  # (n_rows, d)
        valid = known & (written[safe] == u - 1) & (u > 1)
        similarity = nn.functional.cosine_similarity(representation, previous.to(representation.dtype), dim=-1)
        weight = (max(T - u, 0) / T) * similarity * valid.to(similarity.dtype)
        with torch.no_grad():
            memory[slots[known]] = representation[known].to(memory.dtype)
            written[slots[known]] = u
        return weight.unsqueeze(-1)

    # ---------------------------------------------------------------- inference

    def infer(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Every relation ``r`` reads each bag with its own query: ``p(r | S, q_r)`` from ``h_B_att(r)``."""
        h_E, _, h_S = self.levels(batch)
        n_bags = batch["bag_labels"].shape[0]
        membership = bag_membership(batch["sentence_bag"], n_bags)  # (n_bags, n_sent)
        bags, weights = all_query_attention(self.queries(), h_S, membership)  # (n_bags, R, d), (n_bags, R, n)
        relations = self.relations.relations
        if not self.config.recontextualization or self.config.recipe == "released":  # released: training only
            scores = torch.softmax(self.classifier(bags), dim=-1).diagonal(dim1=1, dim2=2)  # (n_bags, R)
            names = [["sentence_attention"] for _ in relations]
            return {
                "scores": scores,
                "explanations": attention_explanations(relations, names, weights.unsqueeze(2), membership, batch),
            }
        alpha = weights.sum(0)  # (R, n_sent): each sentence's weight in its own bag
        same_bag = (membership.T.float() @ membership.float()) > 0  # (n_sent, n_sent)
        pool = membership.to(h_S.dtype).expand(len(relations), -1, -1)  # (R, n_bags, n_sent)
        per_relation = bags.transpose(0, 1)  # (R, n_bags, d)
        h_B_att, reach = [], []  # the relations' readings in chunks: attention is (views*heads, n_sent, n_sent)
        for start in range(0, len(relations), RELATION_CHUNK):
            part = slice(start, start + RELATION_CHUNK)
            _, _, h_B_part, cross = self.recontextualize(
                h_E, h_S, per_relation[part], alpha[part], ~same_bag, pool[part]
            )
            h_B_att.append(h_B_part)
            reach.append(cross.float().sum(1) * alpha[part].float())  # share of each sentence reaching h'_B
        h_B_att, reach = torch.cat(h_B_att), torch.cat(reach)  # (R, n_bags, d), (R, n_sent)
        probabilities = torch.softmax(self.classifier(h_B_att.transpose(0, 1)), dim=-1)  # (n_bags, R, R)
        scores = probabilities.diagonal(dim1=1, dim2=2)  # (n_bags, R)
        totals = reach @ membership.T.float()  # (R, n_bags)
        reach = reach / totals[:, batch["sentence_bag"]].clamp_min(1e-12)
        folded = reach.unsqueeze(0) * membership.unsqueeze(1)  # (n_bags, R, n_sent)
        levels = torch.stack([weights.float(), folded], dim=2)  # (n_bags, R, 2, n_sent)
        names = [["sentence_attention", "bag_cross_level_attention"] for _ in relations]
        return {
            "scores": scores,
            "explanations": attention_explanations(relations, names, levels, membership, batch),
        }


def pack_groups(membership: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``membership`` (G, n_sent) -> ``index`` (G, m): each group's sentences in batch order, then padding
    (indices of sentences outside the group), and ``member`` (G, m), False on the padding; m = the largest group."""
    counts = membership.sum(1)
    width = int(counts.max()) if counts.numel() else 0
    index = torch.argsort((~membership).to(torch.uint8), dim=1, stable=True)[:, :width]  # members first, in order
    member = torch.arange(width, device=membership.device) < counts.unsqueeze(1)
    return index, member


def normalise_gradient(g: torch.Tensor, recipe: str) -> torch.Tensor:
    """Eq. 13's ``g / ‖g‖``: each row by its own norm (paper) or the whole batch by one norm (released)."""
    if recipe == "released":
        return g / g.norm().clamp_min(1e-12)
    return g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def bag_key(bag: Bag) -> str:
    """Stable key of a training bag: head id, tail id and its relations."""
    return f"{bag.head_id}\t{bag.tail_id}\t{'|'.join(bag.relations)}"
