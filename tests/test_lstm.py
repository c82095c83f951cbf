"""The padded BiLSTM gives every sequence the states it gets alone, whatever the padding."""

from __future__ import annotations

import torch

from hiere.encoders.lstm import BiLSTM, reverse_within_length


def test_reverse_within_length_keeps_padding_in_place():
    inputs = torch.arange(10.0).view(2, 5, 1)
    out = reverse_within_length(inputs, torch.tensor([3, 5]))
    assert out[0, :, 0].tolist() == [2.0, 1.0, 0.0, 3.0, 4.0]
    assert out[1, :, 0].tolist() == [9.0, 8.0, 7.0, 6.0, 5.0]


def test_padded_batch_equals_each_sequence_alone():
    torch.manual_seed(0)
    lstm = BiLSTM(4, 3)
    long, short = torch.randn(1, 7, 4), torch.randn(1, 4, 4)
    batch = torch.zeros(2, 7, 4)
    batch[0], batch[1, :4] = long[0], short[0]
    out = lstm(batch, torch.tensor([7, 4]))
    torch.testing.assert_close(out[0], lstm(long, torch.tensor([7]))[0])
    torch.testing.assert_close(out[1, :4], lstm(short, torch.tensor([4]))[0])
    assert torch.all(out[1, 4:] == 0)
    # the reference: a bidirectional nn.LSTM with the same weights on the unpadded sequence
    reference = torch.nn.LSTM(4, 3, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(reference, name).copy_(getattr(lstm.forward_lstm, name))
            getattr(reference, f"{name}_reverse").copy_(getattr(lstm.backward_lstm, name))
    torch.testing.assert_close(out[1, :4], reference(short)[0][0])
