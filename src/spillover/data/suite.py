"""The seven-domain prompt suite (plus XSTest, MMLU and benign), built from the public sources."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ..config import Seed, StrictModel
from ..domains import DOMAINS, MMLU, XSTEST, Domain
from ..io import InputError, read_json, read_jsonl, write_json, write_jsonl
from . import (alpaca, bbq, cyberseceval, donotanswer, mmlu, msts, sgbench, sorrybench, strongreject, toxigen,
               xstest)
from .classify import PillarJudge, agreement, classify_pillars, parse_answer
from .pillars import Pillar, source_pillar
from .records import PromptRecord, SourceLoad
from .splits import dedupe, shuffled, split, test_size_for
from .store import DataStore

BENIGN = alpaca.BENIGN
XSTEST_UNSAFE = xstest.XSTEST_UNSAFE
EXTRA_SETS = (XSTEST, XSTEST_UNSAFE, MMLU, BENIGN)

#: Loaders of the sources whose prompts go through the 7-pillar classification.
PILLAR_LOADERS = {
    "strongreject": strongreject.load,
    "sorry_bench": sorrybench.load,
    "msts": msts.load,
    "sg_bench": sgbench.load,
    "do_not_answer": donotanswer.load,
}
DEFAULT_SOURCE_PILLARS = {
    "strongreject": strongreject.PILLARS,
    "sorry_bench": sorrybench.PILLARS,
    "msts": msts.PILLARS,
    "sg_bench": sgbench.PILLARS,
    "do_not_answer": donotanswer.PILLARS,
}

#: Test prompts per domain in the paper (Sensitive, Medical/Legal, Privacy and Safety inferred from its percentages).
PAPER_TEST_SIZES = {Domain.CYBERSECURITY: 100, Domain.SAFETY: 93, Domain.TOXICITY: 200, Domain.BIAS: 200,
                    Domain.SENSITIVE: 57, Domain.MEDICAL_LEGAL: 96, Domain.PRIVACY: 200}

#: Domains built from the pillar classification (the others come from their own datasets).
CLASSIFIED_DOMAINS = (Domain.SAFETY, Domain.SENSITIVE, Domain.MEDICAL_LEGAL, Domain.PRIVACY)


class DataConfig(StrictModel):
    """Every choice the paper leaves open, with the defaults documented in docs/data.md."""

    #: Seed of every shuffle and split.
    seed: Seed = 0
    #: Test prompts per domain (the paper's sizes; the rest is train).
    test_sizes: dict[Domain, int] = Field(default_factory=lambda: dict(PAPER_TEST_SIZES))
    #: A domain's test split never takes more than this fraction of its prompts (the rest is train).
    max_test_fraction: float = Field(0.8, gt=0.0, lt=1.0)
    #: Drop repeated prompts (whitespace and case ignored) inside a set before splitting.
    dedupe: bool = True
    #: Raise on a malformed row instead of skipping it with a counted warning.
    strict: bool = False
    #: CyberSecEval parts that make Cybersecurity.
    cyber_sources: list[Literal["mitre", "interpreter"]] = Field(default_factory=lambda: ["mitre", "interpreter"])
    #: How a ToxiGen line becomes a chat request ({statements} = the "- ..." lines).
    toxigen_template: str = toxigen.DEFAULT_TEMPLATE
    #: The BBQ items kept for Bias.
    bbq_context_condition: Literal["ambig", "disambig"] = "ambig"
    bbq_question_polarity: Literal["neg", "nonneg"] = "neg"
    #: Sources of each pillar-classified domain; a prompt joins a domain when its pillar is that domain.
    pillar_sources: dict[Domain, list[str]] = Field(default_factory=lambda: {
        Domain.SAFETY: ["strongreject", "sorry_bench", "msts", "sg_bench", "do_not_answer"],
        Domain.SENSITIVE: ["do_not_answer"],
        Domain.MEDICAL_LEGAL: ["do_not_answer"],
        Domain.PRIVACY: ["do_not_answer"],
    })
    #: The offline classifier: per source, category (or subcategory) -> pillar; missing = other.
    #: Entries given in a config are merged over the default tables.
    source_pillars: dict[str, dict[str, Pillar]] = Field(
        default_factory=lambda: {s: dict(t) for s, t in DEFAULT_SOURCE_PILLARS.items()})
    #: "source" (offline category mapping) or an LLM judge that labels every prompt of the pillar sources.
    classifier: Literal["source"] | PillarJudge = "source"
    #: MMLU subjects for utility (see docs/data.md for why these five).
    mmlu_subjects: list[str] = Field(default_factory=lambda: [
        "elementary_mathematics", "high_school_biology", "high_school_geography",
        "high_school_macroeconomics", "prehistory"])
    #: Questions kept per MMLU subject (a seeded sample); None keeps all.
    mmlu_max_per_subject: int | None = Field(None, gt=0)
    #: Benign instructions: "alpaca_en_demo" (999, with responses) or "alpaca" (31,323, instructions only).
    benign_source: Literal["alpaca_en_demo", "alpaca"] = "alpaca_en_demo"
    #: Benign instructions kept (a seeded sample); None keeps all.
    benign_count: int | None = Field(None, gt=0)
    benign_test_size: int = Field(100, ge=0)

    @field_validator("test_sizes")
    @classmethod
    def _fill_test_sizes(cls, value: dict[Domain, int]) -> dict[Domain, int]:
        if any(v < 0 for v in value.values()):
            raise ValueError("test sizes must be >= 0")
        return {**PAPER_TEST_SIZES, **value}

    @field_validator("pillar_sources")
    @classmethod
    def _only_classified_domains(cls, value: dict[Domain, list[str]]) -> dict[Domain, list[str]]:
        built_otherwise = [d.value for d in value if d not in CLASSIFIED_DOMAINS]
        if built_otherwise:
            raise ValueError(f"{built_otherwise} are built from their own sources; pillar_sources may only hold "
                             f"{', '.join(d.value for d in CLASSIFIED_DOMAINS)}")
        return value

    @field_validator("source_pillars")
    @classmethod
    def _merge_source_pillars(cls, value: dict[str, dict[str, Pillar]]) -> dict[str, dict[str, Pillar]]:
        merged = {s: dict(t) for s, t in DEFAULT_SOURCE_PILLARS.items()}
        for source, table in value.items():
            merged.setdefault(source, {}).update(table)
        return merged


class Suite:
    """Prompt sets by name and split, with the provenance of every count."""

    def __init__(self, sets: dict[str, dict[str, list[PromptRecord]]], info: dict):
        self.sets = sets
        self.info = info

    def names(self) -> list[str]:
        order = [d.value for d in DOMAINS] + list(EXTRA_SETS)
        return [n for n in order if n in self.sets] + sorted(n for n in self.sets if n not in order)

    def get(self, name: str, split: str = "test") -> list[PromptRecord]:
        """Records of a set ("cybersecurity", ..., "xstest", "xstest_unsafe", "mmlu", "benign") and split."""
        if name not in self.sets:
            raise KeyError(f"unknown set {name!r}; available: {', '.join(self.names())}")
        if split not in self.sets[name]:
            raise KeyError(f"set {name!r} has no {split!r} split; available: {', '.join(self.sets[name])}")
        return self.sets[name][split]

    def counts(self) -> dict:
        """{name: {split: n}} for every set, plus "sources": per-source rows/loaded/skipped/used."""
        out: dict = {n: {s: len(rs) for s, rs in self.sets[n].items()} for n in self.names()}
        used: dict[str, Counter] = {}
        for n in self.names():
            for records in self.sets[n].values():
                for r in records:
                    used.setdefault(r.source, Counter())[n] += 1
        out["sources"] = {src: {**{k: v for k, v in rep.items() if k != "skipped_rows"},
                                "used": dict(used.get(src, {}))}
                          for src, rep in self.info["sources"].items()}
        return out

    def write(self, out_dir: Path | str) -> None:
        """``<name>.<split>.jsonl`` per set and split, and ``manifest.json`` (config, file sha256s, counts)."""
        out_dir = Path(out_dir)
        for name in self.names():
            for split_name, records in self.sets[name].items():
                write_jsonl(out_dir / f"{name}.{split_name}.jsonl", (r.to_dict() for r in records))
        write_json(out_dir / "manifest.json", {**self.info, "counts": self.counts(),
                                               "splits": {n: list(self.sets[n]) for n in self.names()}})

    @classmethod
    def read(cls, out_dir: Path | str) -> Suite:
        out_dir = Path(out_dir)
        manifest = read_json(out_dir / "manifest.json")
        if not isinstance(manifest, dict) or "splits" not in manifest:
            raise InputError(f"{out_dir / 'manifest.json'}: not a suite manifest (no 'splits')")
        sets = {name: {s: [PromptRecord.from_dict(d) for d in read_jsonl(out_dir / f"{name}.{s}.jsonl",
                                                                          required=("id", "prompt", "set", "source"))]
                       for s in splits}
                for name, splits in manifest["splits"].items()}
        info = {k: v for k, v in manifest.items() if k not in ("counts", "splits")}
        return cls(sets, info)


def _as_set(records: list[PromptRecord], name: str) -> list[PromptRecord]:
    return [r if r.set == name else replace(r, set=name) for r in records]


class _Builder:
    def __init__(self, cfg: DataConfig, store: DataStore):
        self.cfg, self.store = cfg, store
        self.sources: dict[str, dict] = {}
        self.files: dict[str, str] = {}
        self.duplicates: dict[str, list[str]] = {}

    def take(self, load: SourceLoad) -> list[PromptRecord]:
        self.sources[load.report.source] = load.report.to_dict()
        for f in load.report.files:
            self.files[f] = self.store.sha256(f)
        return load.records

    def unique(self, name: str, records: list[PromptRecord]) -> list[PromptRecord]:
        if not self.cfg.dedupe:
            return records
        kept, dropped = dedupe(records)
        if dropped:
            self.duplicates[name] = dropped
        return kept

    def domain(self, domain: Domain, records: list[PromptRecord]) -> dict[str, list[PromptRecord]]:
        records = self.unique(domain.value, _as_set(records, domain.value))
        size = test_size_for(len(records), self.cfg.test_sizes.get(domain, 0), self.cfg.max_test_fraction)
        return split(records, size, self.cfg.seed, domain.value)

    def pillar_domains(self) -> tuple[dict[Domain, list[PromptRecord]], dict]:
        cfg = self.cfg
        wanted = sorted({s for srcs in cfg.pillar_sources.values() for s in srcs})
        unknown = [s for s in wanted if s not in PILLAR_LOADERS]
        if unknown:
            raise InputError(f"pillar_sources: unknown source(s) {unknown}; valid: {', '.join(PILLAR_LOADERS)}")
        pool = [r for s in wanted for r in self.take(PILLAR_LOADERS[s](self.store, strict=cfg.strict))]
        by_source = [source_pillar(r, cfg.source_pillars) for r in pool]
        stats: dict = {"classifier": "source"}
        chosen = by_source
        if isinstance(cfg.classifier, PillarJudge):
            llm, answers = classify_pillars([r.prompt for r in pool], cfg.classifier)
            chosen = llm
            stats = {"classifier": cfg.classifier.model_dump(), "agreement_with_source": agreement(by_source, llm),
                     "unparsed_answers": sum(parse_answer(a) is None for a in answers)}
        stats["counts"] = {s: dict(Counter(p.value for r, p in zip(pool, chosen) if r.source == s)) for s in wanted}
        out: dict[Domain, list[PromptRecord]] = {d: [] for d in cfg.pillar_sources}
        for r, src_p, p in zip(pool, by_source, chosen):
            d = p.domain
            if d in out and r.source in cfg.pillar_sources[d]:
                meta = {**r.meta, "pillar": p.value, "source_pillar": src_p.value}
                out[d].append(replace(r, meta=meta))
        return out, stats


def build_suite(cfg: DataConfig | None = None, data_dir: Path | str | None = None, *,
                online: bool | None = None, cache_dir: Path | str | None = None) -> Suite:
    """Load every source, assemble the sets and split them; deterministic for a given config.

    ``online`` (default: unless ``$SPILLOVER_OFFLINE`` is set) allows downloading missing files.
    """
    cfg = cfg or DataConfig()
    online = (not os.environ.get("SPILLOVER_OFFLINE")) if online is None else online
    b = _Builder(cfg, DataStore(data_dir, cache_dir=cache_dir, online=online))
    sets: dict[str, dict[str, list[PromptRecord]]] = {}

    cyber_loaders = {"mitre": cyberseceval.load_mitre, "interpreter": cyberseceval.load_interpreter}
    cyber = [r for part in cfg.cyber_sources for r in b.take(cyber_loaders[part](b.store, strict=cfg.strict))]
    sets[Domain.CYBERSECURITY.value] = b.domain(Domain.CYBERSECURITY, cyber)

    tox = b.take(toxigen.load(b.store, template=cfg.toxigen_template, strict=cfg.strict))
    sets[Domain.TOXICITY.value] = b.domain(Domain.TOXICITY, tox)

    items = b.take(bbq.load(b.store, strict=cfg.strict))
    keep = f"{cfg.bbq_context_condition}/{cfg.bbq_question_polarity}"
    sets[Domain.BIAS.value] = b.domain(Domain.BIAS, [r for r in items if r.category == keep])

    classified, pillar_stats = b.pillar_domains()
    for d, records in classified.items():
        sets[d.value] = b.domain(d, records)

    xs = b.take(xstest.load(b.store, strict=cfg.strict))
    for name in (XSTEST, XSTEST_UNSAFE):
        sets[name] = {"test": shuffled([r for r in xs if r.set == name], cfg.seed, name)}

    questions = b.take(mmlu.load(b.store, cfg.mmlu_subjects, strict=cfg.strict))
    if cfg.mmlu_max_per_subject:
        questions = [r for s in cfg.mmlu_subjects
                     for r in shuffled([q for q in questions if q.category == s], cfg.seed, f"mmlu:{s}")
                     [:cfg.mmlu_max_per_subject]]
    sets[MMLU] = {"test": shuffled(questions, cfg.seed, MMLU)}

    benign = b.unique(BENIGN, b.take(alpaca.load(b.store, source=cfg.benign_source, strict=cfg.strict)))
    if cfg.benign_count:
        benign = shuffled(benign, cfg.seed, f"{BENIGN}:sample")[:cfg.benign_count]
    size = test_size_for(len(benign), cfg.benign_test_size, cfg.max_test_fraction)
    sets[BENIGN] = split(benign, size, cfg.seed, BENIGN)

    info = {"config": cfg.model_dump(mode="json"), "files": dict(sorted(b.files.items())),
            "sources": b.sources, "duplicates_dropped": b.duplicates, "pillars": pillar_stats}
    return Suite(sets, info)
