"""Metrics that match the reference scorers: DocRED (doc.py) and OpenNRE/HNRE (bag.py)."""
