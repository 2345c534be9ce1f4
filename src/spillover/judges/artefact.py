"""Shipped judge artefacts: a ``.npz`` file with a JSON card beside it carrying the file's sha256."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


class CardedArtefact:
    """Checksum and saving for a dataclass with a ``card`` dict and a ``to_bytes()`` serialisation."""

    def to_bytes(self) -> bytes:
        raise NotImplementedError

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def save(self, path: Path) -> None:
        """Write ``path`` (.npz) and its card beside it (.json, with the artefact's sha256)."""
        from ..io import write_json

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_bytes())
        write_json(path.with_suffix(".json"), {**self.card, "sha256": self.sha256})


def read_card(path: Path) -> dict:
    """The card beside artefact ``path`` (``.json``), or {} when there is none."""
    card_path = path.with_suffix(".json")
    return json.loads(card_path.read_text()) if card_path.exists() else {}
