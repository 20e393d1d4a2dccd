"""Training-data export: judged trajectories -> SFT datasets (openai, sharegpt, hf)."""

from astra.export.sft import FORMATS, ExportReport, export_sft, openai_record, sharegpt_record

__all__ = ["FORMATS", "ExportReport", "export_sft", "openai_record", "sharegpt_record"]
