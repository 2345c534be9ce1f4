"""The evaluation prompts of ``spillover evaluate`` as an inspect_ai dataset."""

from __future__ import annotations

from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageSystem, ChatMessageUser

from ..data.suite import Suite


def suite_dataset(suite: Suite, sets: list[str], n: int | None, system_prompt: str | None = None) -> MemoryDataset:
    """One sample per prompt: the first ``n`` of each set's seeded test split, in ``sets`` order.

    A sample's id is the record id (as in ``responses.jsonl``); its metadata holds the set, the
    source and the record's meta (BBQ answers, ToxiGen statements), which the judges read.
    """
    samples = []
    for name in sets:
        for rec in suite.get(name, "test")[:n]:
            user = ChatMessageUser(content=rec.prompt)
            samples.append(Sample(
                input=[ChatMessageSystem(content=system_prompt), user] if system_prompt else rec.prompt,
                id=rec.id, metadata={"set": name, "source": rec.source, "category": rec.category, "meta": rec.meta}))
    return MemoryDataset(samples, name="spillover-suite")
