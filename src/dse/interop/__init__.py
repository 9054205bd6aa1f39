"""Ecosystem formats: receipts out as OpenTelemetry GenAI spans, DSPy-saved programs in as
params."""

from dse.interop._dspy import (
    DspyImportError,
    DspyImportResult,
    DspyProgram,
    dspy_params,
    import_dspy_program,
    parse_field_map,
    read_dspy_program,
)
from dse.interop._otel import (
    OtelExportError,
    OtelExportOptions,
    OtelExportResult,
    export_receipts,
    provider_for_lm_spec,
    shown_url,
    span_attributes,
    traces_endpoint,
)

__all__ = [
    "DspyImportError",
    "DspyImportResult",
    "DspyProgram",
    "OtelExportError",
    "OtelExportOptions",
    "OtelExportResult",
    "dspy_params",
    "export_receipts",
    "import_dspy_program",
    "parse_field_map",
    "provider_for_lm_spec",
    "read_dspy_program",
    "shown_url",
    "span_attributes",
    "traces_endpoint",
]
