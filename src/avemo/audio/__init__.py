"""Audio stage: decoding, utterance features (192-D, eGeMAPS, SSL) and frame-aligned log-mels.

Modules: ``decode`` (PyAV -> mono float32 at a fixed rate), ``features`` (192-D vector),
``egemaps`` (openSMILE 88-D), ``aligned`` (log-mel sequences and windows at video frame
timestamps), ``ssl`` (wav2vec 2.0 / HuBERT embeddings), ``extract`` (the stage function
``extract_audio``) and ``store`` (``AudioStore``, the reader of the stage's output).
"""
