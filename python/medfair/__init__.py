"""medfair: counterfactual fairness audits and alignment for clinical LLMs.

The computation happens in the C++ extension ``medfair._core``; this package
re-exports its classes and adds the command-line interface and reports.
"""

import logging as _logging

import torch as _torch  # noqa: F401  (loads libtorch before the extension)

from . import _core
from ._core import stats
from ._core import (
    BPETokenizer,
    CausalLM,
    ConfigError,
    DataError,
    EndpointError,
    Error,
    FormatError,
    IOError,
    LlamaConfig,
    ModelError,
    SentenceEncoder,
    SentencePieceTokenizer,
    Tokenizer,
    WordPieceOptions,
    WordPieceTokenizer,
    cosine,
    cosine_similarity_matrix,
    load_tokenizer_json,
    render_chat,
    set_log_level,
)

__version__ = _core.__version__

_logging.getLogger("medfair").addHandler(_logging.NullHandler())

__all__ = [
    "BPETokenizer",
    "CausalLM",
    "ConfigError",
    "DataError",
    "EndpointError",
    "Error",
    "FormatError",
    "IOError",
    "LlamaConfig",
    "ModelError",
    "SentenceEncoder",
    "SentencePieceTokenizer",
    "Tokenizer",
    "WordPieceOptions",
    "WordPieceTokenizer",
    "cosine",
    "cosine_similarity_matrix",
    "load_tokenizer_json",
    "render_chat",
    "set_log_level",
    "stats",
]
