"""The prompt suite: one loader per public dataset, a checksummed store, pillar classification, splits."""

from .records import PromptRecord
from .suite import DataConfig, Suite, build_suite

__all__ = ["DataConfig", "PromptRecord", "Suite", "build_suite"]
