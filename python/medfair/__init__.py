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
    ContinuationScore,
    DataError,
    EndpointError,
    EndpointOptions,
    Error,
    FairnessEvaluator,
    FormatError,
    GeneratedText,
    GenerationParams,
    HttpClient,
    HttpOptions,
    IOError,
    LlamaConfig,
    LoraOptions,
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
    OpenAIChatClient,
    OpenAICompletionsClient,
    ScoringOptions,
    StraddlePolicy,
    sample_answers,
    set_log_level,
)
from .audit import AuditReport, audit
from .prompts import (
    AttributeCatalog,
    PromptModifier,
    PromptSet,
    Task,
    Template,
    lint_file,
    load_generic,
    load_healer,
    load_nurse,
    load_qpain,
    load_task,
)

__version__ = _core.__version__

_logging.getLogger("medfair").addHandler(_logging.NullHandler())

__all__ = [
    "AttributeCatalog",
    "AuditReport",
    "BPETokenizer",
    "CausalLM",
    "ConfigError",
    "ContinuationScore",
    "DataError",
    "EndpointError",
    "EndpointOptions",
    "Error",
    "FairnessEvaluator",
    "FormatError",
    "GeneratedText",
    "GenerationParams",
    "HttpClient",
    "HttpOptions",
    "IOError",
    "LlamaConfig",
    "LoraOptions",
    "ModelError",
    "OpenAIChatClient",
    "OpenAICompletionsClient",
    "PromptModifier",
    "PromptSet",
    "ScoringOptions",
    "SentenceEncoder",
    "SentencePieceTokenizer",
    "StraddlePolicy",
    "Task",
    "Template",
    "Tokenizer",
    "WordPieceOptions",
    "WordPieceTokenizer",
    "audit",
    "cosine",
    "cosine_similarity_matrix",
    "lint_file",
    "load_generic",
    "load_healer",
    "load_nurse",
    "load_qpain",
    "load_task",
    "load_tokenizer_json",
    "render_chat",
    "sample_answers",
    "set_log_level",
    "stats",
]
