"""Readers with validation, vocabularies and relation maps."""
