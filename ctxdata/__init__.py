"""ctxdata: build contrastive-context (ContextRL) pair datasets and train on them.

Importing this package is deliberately cheap: no torch, transformers, faiss, open_clip
or diffusers. Sub-modules import their heavy dependencies inside the functions that use them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
