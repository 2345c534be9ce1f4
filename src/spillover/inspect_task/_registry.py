"""The ``inspect_ai`` entry point: importing it registers the task, scorer and metric."""

from .scorer import refusal_rates, suite_judge
from .task import refusal_suite

__all__ = ["refusal_rates", "refusal_suite", "suite_judge"]
