"""spillover: measure and contain emergent misalignment from narrow refusal unlearning."""

__version__ = "0.1.0"
