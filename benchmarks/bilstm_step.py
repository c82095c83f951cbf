"""Time one BiLSTM-RE training step (forward + backward) on 8 real Re-DocRED documents, comparing the
layers hiere uses with the textbook ones they replace: a packed ``nn.LSTM`` vs ``hiere.encoders.lstm.BiLSTM``,
and ``torch.nn.functional.bilinear`` on per-pair concatenations vs ``EntityPairBilinear``.

    python benchmarks/bilstm_step.py [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from hiere.data.docred import read_docred
from hiere.data.relations import RelationMap
from hiere.models.doc.bilstm import BiLSTMRE

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "redocred"


class PackedBiLSTM(torch.nn.Module):
    def __init__(self, input_size: int, hidden: int):
        super().__init__()
        self.lstm = torch.nn.LSTM(input_size, hidden, batch_first=True, bidirectional=True)
        self.output_size = 2 * hidden

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, _ = self.lstm(packed)
        return pad_packed_sequence(output, batch_first=True, total_length=inputs.shape[1])[0]


def plain_bilinear(model: BiLSTMRE):
    def score(entities, distances, pair_doc, pair_h, pair_t, distance_ht, distance_th):
        head = torch.cat([entities[pair_doc, pair_h], distances[distance_ht]], dim=-1)
        tail = torch.cat([entities[pair_doc, pair_t], distances[distance_th]], dim=-1)
        return torch.nn.functional.bilinear(head, tail, model.bilinear.bilinear.weight, model.bilinear.bilinear.bias)

    return score


def time_step(model: BiLSTMRE, batch: dict, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        model(batch)["loss"].backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} thread(s), load average {os.getloadavg()}")
    docs = read_docred(DATA / "dev_revised.json")[:8]
    relations = RelationMap.from_rel_info(DATA / "rel_info.json")
    config = BiLSTMRE.Config(dropout=0.0)
    torch.manual_seed(0)
    model = BiLSTMRE(config, BiLSTMRE.build_resources(config, docs, relations)).train()
    batch = model.collate([model.featurize(d) for d in docs])
    print(f"data: Re-DocRED dev_revised.json documents 0-7, {len(batch['pairs'])} entity pairs, "
          f"{int(batch['lengths'].max())} tokens max")
    hiere_lstm, hiere_bilinear = model.lstm, model.bilinear.forward
    packed = PackedBiLSTM(model.lstm.forward_lstm.input_size, config.hidden)
    rows = []
    for lstm_name, lstm in (("packed nn.LSTM", packed), ("hiere BiLSTM", hiere_lstm)):
        for bilinear_name, bilinear in (("per-pair bilinear", plain_bilinear(model)),
                                        ("EntityPairBilinear", hiere_bilinear)):
            model.lstm = lstm
            model.bilinear.forward = bilinear
            rows.append((lstm_name, bilinear_name, time_step(model, batch, args.repeats)))
    print("| LSTM | pair scorer | seconds per step (median) |\n|---|---|---|")
    for lstm_name, bilinear_name, seconds in rows:
        print(f"| {lstm_name} | {bilinear_name} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
