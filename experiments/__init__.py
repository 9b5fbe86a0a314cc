"""Scripts that reproduce the paper's figures and tables; run as ``python -m experiments.NAME``."""
