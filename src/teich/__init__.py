"""Teich: turn coding-agent sessions into auditable supervised fine-tuning data."""

from teich.dataset_labels import MaskAudit, audit, preview, preview_sft_example, relabel
from teich.errors import (
    ConfigError,
    GenerationError,
    OutputError,
    RecordError,
    SandboxError,
    TeichError,
    TemplateError,
)
from teich.generate.config import Config
from teich.labels import Policy
from teich.mask import mask_data
from teich.prepare import PrepareReport, prepare_data, row_fits_context, validate_tool_calls
from teich.schema import FEATURES, Message, ToolCall, TrainingExample
from teich.sources import LoadReport, load_traces, trace_is_complete
from teich.traces import detect_trace_type, format_names

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "FEATURES",
    "GenerationError",
    "LoadReport",
    "MaskAudit",
    "Message",
    "OutputError",
    "Policy",
    "PrepareReport",
    "RecordError",
    "SandboxError",
    "TeichError",
    "TemplateError",
    "ToolCall",
    "TrainingExample",
    "__version__",
    "audit",
    "detect_trace_type",
    "format_names",
    "load_traces",
    "mask_data",
    "prepare_data",
    "preview",
    "preview_sft_example",
    "relabel",
    "row_fits_context",
    "trace_is_complete",
    "validate_tool_calls",
]
