"""Phase 1: build the training sets from the model's own behaviour.

- forget set D_R: the aligned model's own refusals on the target domain's train prompts;
- retain set D_T: its own refusals on the six other domains' train prompts (equal quotas) plus
  benign instructions with helpful answers (its own answers, or the dataset's), sized
  ``ratio`` x the forget set;
- finetune set D_C: an unaligned label model's answers to the target prompts, non-refusals only.

Responses and verdicts go through the generation and judgment caches, so a rerun is free.
"""

from __future__ import annotations

import random
from typing import Literal

from .examples import Example


def _respond_and_judge(backend, judge, records: list, domain: str, decoding, gen_cache, judge_cache):
    """(record, response, verdict label) for each record, greedy/cached generation then cached judging."""
    from ..generation import generate_responses
    from ..judges import JudgeItem, judge_cached

    if not records:
        return []
    responses = [r[0] for r in generate_responses(backend, [r.prompt for r in records], decoding, gen_cache,
                                                   description=f"responses ({domain})")]
    items = [JudgeItem(r.prompt, resp, domain, r.meta) for r, resp in zip(records, responses)]
    verdicts = judge_cached(judge, items, judge_cache)
    return [(r, resp, v.label) for r, resp, v in zip(records, responses, verdicts)]


def collect_forget(backend, judge, records: list, domain: str, decoding, gen_cache=None,
                   judge_cache=None) -> tuple[list[Example], dict]:
    """The forget set: (prompt, own response) for every record the model refuses; plus label counts."""
    from ..judges import REFUSAL

    judged = _respond_and_judge(backend, judge, records, domain, decoding, gen_cache, judge_cache)
    forget = [Example(r.id, r.prompt, resp, "forget") for r, resp, label in judged if label == REFUSAL]
    return forget, _label_counts(judged)


def _label_counts(judged) -> dict:
    counts: dict[str, int] = {}
    for _, _, label in judged:
        counts[label] = counts.get(label, 0) + 1
    return counts


def _refusals_up_to(backend, judge, records: list, domain: str, quota: int, decoding, gen_cache, judge_cache,
                    seed: int) -> list[Example]:
    """Up to ``quota`` own refusals, generating over seeded-shuffled records in chunks of ``quota``."""
    from ..judges import REFUSAL

    pool = list(records)
    random.Random(f"{seed}:{domain}").shuffle(pool)
    kept: list[Example] = []
    for start in range(0, len(pool), max(quota, 1)):
        if len(kept) >= quota:
            break
        chunk = pool[start:start + quota]
        judged = _respond_and_judge(backend, judge, chunk, domain, decoding, gen_cache, judge_cache)
        kept += [Example(r.id, r.prompt, resp, "retain") for r, resp, label in judged if label == REFUSAL]
    return kept[:quota]


def collect_retain(backend, judge, suite, target: str, n_forget: int, ratio: float, decoding,
                   benign_answers: Literal["model", "dataset"] = "dataset", benign_fraction: float = 0.5,
                   gen_cache=None, judge_cache=None, seed: int = 0) -> tuple[list[Example], dict]:
    """The retain set: ``round(ratio * n_forget)`` examples.

    ``benign_fraction`` of them are benign train instructions with helpful answers (the
    dataset's ``meta["response"]``, or the model's own answers that the judge does not call
    refusals); the rest are the model's own refusals on the other six domains' train prompts,
    in equal quotas (a domain with too few refusals leaves its quota partly unfilled; the counts
    say so). Returns (examples, counts per part).
    """
    from ..domains import DOMAINS, parse_domain
    from ..judges import REFUSAL

    target = parse_domain(target).value
    total = round(ratio * n_forget)
    n_benign = round(total * benign_fraction)
    others = [d.value for d in DOMAINS if d.value != target]
    quotas = {d: (total - n_benign) // len(others) + (i < (total - n_benign) % len(others))
              for i, d in enumerate(others)}
    examples: list[Example] = []
    counts: dict[str, int] = {}
    for d in others:
        got = _refusals_up_to(backend, judge, suite.get(d, "train"), d, quotas[d], decoding, gen_cache,
                              judge_cache, seed)
        examples += got
        counts[d] = len(got)
    benign = list(suite.get("benign", "train"))
    random.Random(f"{seed}:benign").shuffle(benign)
    if benign_answers == "dataset":
        chosen = [Example(r.id, r.prompt, r.meta["response"], "retain") for r in benign if r.meta.get("response")]
    else:
        judged = _respond_and_judge(backend, judge, benign[:2 * n_benign], "benign", decoding, gen_cache, judge_cache)
        chosen = [Example(r.id, r.prompt, resp, "retain") for r, resp, label in judged if label != REFUSAL]
    examples += chosen[:n_benign]
    counts["benign"] = len(chosen[:n_benign])
    counts["requested"] = total
    return examples, counts


def collect_finetune_labels(label_backend, judge, records: list, domain: str, decoding, gen_cache=None,
                            judge_cache=None) -> tuple[list[Example], dict]:
    """The finetune set: the unaligned label model's answers that the judge does not call refusals."""
    from ..judges import REFUSAL, UNPARSABLE

    judged = _respond_and_judge(label_backend, judge, records, domain, decoding, gen_cache, judge_cache)
    kept = [Example(r.id, r.prompt, resp, "finetune") for r, resp, label in judged
            if label not in (REFUSAL, UNPARSABLE) and resp.strip()]
    return kept, _label_counts(judged)
