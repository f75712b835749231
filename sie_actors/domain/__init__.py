"""Pure domain of the SIE config control plane: no I/O, no clocks, no logging.

Parsing and validation of model documents, the immutable registry snapshot with its one
append path, both hashes, resolve, the delta format and the export/read views. All three
services import this package, so they cannot disagree about a rule or a hash.
"""

from __future__ import annotations

from .bundle import Bundle, parse_bundle_yaml
from .conflicts import check_content_conflicts, content_conflicts
from .delta import ConfigDelta, is_trusted_producer
from .errors import (
    BundleConflict,
    BundleNotFound,
    ContentConflict,
    DomainError,
    InvalidModelId,
    InvalidModelSpec,
    InvalidRequest,
    MissingField,
    ModelNotFound,
    ParseError,
    ValidationFailed,
)
from .ids import canonical_lower, model_id_from_stem, store_file_stem, validate_model_id
from .model_config import dump_model_yaml, parse_model_yaml, validate_model_config
from .registry import AppendPlan, LoadIssue, ModelEntry, Registry
from .resolve import parse_model_spec, resolve

__all__ = [
    "AppendPlan",
    "Bundle",
    "BundleConflict",
    "BundleNotFound",
    "ConfigDelta",
    "ContentConflict",
    "DomainError",
    "InvalidModelId",
    "InvalidModelSpec",
    "InvalidRequest",
    "LoadIssue",
    "MissingField",
    "ModelEntry",
    "ModelNotFound",
    "ParseError",
    "Registry",
    "ValidationFailed",
    "canonical_lower",
    "check_content_conflicts",
    "content_conflicts",
    "dump_model_yaml",
    "is_trusted_producer",
    "model_id_from_stem",
    "parse_bundle_yaml",
    "parse_model_spec",
    "parse_model_yaml",
    "resolve",
    "store_file_stem",
    "validate_model_config",
    "validate_model_id",
]
