"""``python -m spillover.cli`` (e.g. under ``accelerate launch -m spillover.cli ...``)."""

from . import main

main()
