"""The end-to-end study: configuration, cached stages, results."""

from .config import StudyConfig
from .pipeline import Study

__all__ = ["Study", "StudyConfig"]
