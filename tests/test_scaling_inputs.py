"""benchmarks/scaling.py: what it asks of each document model (no training here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from scaling import MAX_ENTITIES, documents_of_length, model_overrides  # noqa: E402

REDOCRED = REPO.parent / "shared" / "data" / "redocred" / "dev_revised.json"


def test_models_with_an_entity_cap_get_one_above_the_longest_joined_documents():
    assert model_overrides(str(REPO / "configs" / "bilstm_redocred.yaml")) == [f"model.max_entities={MAX_ENTITIES}"]
    assert model_overrides(str(REPO / "configs" / "hin_glove.yaml")) == [f"model.max_entities={MAX_ENTITIES}"]
    assert model_overrides(str(REPO / "configs" / "atlop_redocred.yaml")) == []
    documents = json.loads(REDOCRED.read_text())[:450]
    longest = documents_of_length(documents, 2000, 8)
    assert max(len(doc["vertexSet"]) for doc in longest) < MAX_ENTITIES
