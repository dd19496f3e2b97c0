"""Data sources: image datasets (digits, npz, TFDS), text corpora, the generated corpus, word-vector files."""
