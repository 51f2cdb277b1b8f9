"""Rank fusion of the per-language runs (ranx) and per-language fusion-weight tuning."""
