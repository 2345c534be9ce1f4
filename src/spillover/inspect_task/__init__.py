"""The study's refusal suite as an inspect_ai task (``inspect eval spillover/refusal_suite``).

Needs the ``[inspect]`` extra; nothing outside this package imports inspect_ai.
"""
