"""Local twin clusters: test and demo infrastructure (see docs in harness.py)."""
