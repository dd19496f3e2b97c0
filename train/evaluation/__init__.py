"""Evaluation: sample quality of generated images, word-vector analogies and similarities."""
