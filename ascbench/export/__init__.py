"""Exports for the outside world: DCASE 2024 Task 1 submission packages and ``predict`` outputs."""

from ascbench.export.dcase import ExportError, ExportResult, export_dcase, select_records
from ascbench.export.meta import Affiliation, Author, SubmissionConfigError, SubmissionInfo, load_submission_config
from ascbench.export.output import OUTPUT_FIELDS, check_output, write_output
from ascbench.export.predict import AudioReadError, Predictions, list_audio, predict_files, prepare_model

__all__ = [
    "OUTPUT_FIELDS",
    "Affiliation",
    "AudioReadError",
    "Author",
    "ExportError",
    "ExportResult",
    "Predictions",
    "SubmissionConfigError",
    "SubmissionInfo",
    "check_output",
    "export_dcase",
    "list_audio",
    "load_submission_config",
    "predict_files",
    "prepare_model",
    "select_records",
    "write_output",
]
