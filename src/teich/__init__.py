"""Teich: turn coding-agent sessions into auditable supervised fine-tuning data."""

from teich.errors import (
    ConfigError,
    GenerationError,
    OutputError,
    PublishError,
    RecordError,
    SandboxError,
    TeichError,
    TemplateError,
)
from teich.generate.card import write_card
from teich.generate.config import Config
from teich.privacy.anonymize import AnonymizeReport, anonymize
from teich.privacy.card import write_folder_card
from teich.privacy.extract import ExtractReport, extract
from teich.privacy.publish import publish
from teich.reports import Report
from teich.schema import FEATURES, Message, ToolCall, TrainingExample
from teich.traces import detect_trace_type, format_names
from teich.traces.sources import LoadReport, load_traces, trace_is_complete
from teich.training.dataset_labels import MaskAudit, audit, preview, preview_sft_example, relabel
from teich.training.labels import Policy
from teich.training.mask import mask_data
from teich.training.prepare import PrepareReport, prepare_data, row_fits_context, validate_tool_calls

__version__ = "0.1.0"

__all__ = [
    "AnonymizeReport",
    "Config",
    "ConfigError",
    "ExtractReport",
    "FEATURES",
    "GenerationError",
    "LoadReport",
    "MaskAudit",
    "Message",
    "OutputError",
    "Policy",
    "PrepareReport",
    "PublishError",
    "RecordError",
    "Report",
    "SandboxError",
    "TeichError",
    "TemplateError",
    "ToolCall",
    "TrainingExample",
    "__version__",
    "anonymize",
    "audit",
    "detect_trace_type",
    "extract",
    "format_names",
    "load_traces",
    "mask_data",
    "prepare_data",
    "preview",
    "preview_sft_example",
    "publish",
    "relabel",
    "row_fits_context",
    "trace_is_complete",
    "validate_tool_calls",
    "write_card",
    "write_folder_card",
]
