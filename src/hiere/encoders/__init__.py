"""Shared encoders: word embeddings (GloVe), CNN/PCNN, BiLSTM, transformers."""
