"""Training entry points (`python -m train.<model>`) and the shared backbone."""
