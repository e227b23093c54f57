"""avemo: a reproducible audio-visual emotion-recognition pipeline for MELD (no text)."""

__version__ = "0.1.0"
