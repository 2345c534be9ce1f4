"""The study as a graph of cached stages.

    data -> baseline -> collect/<target> -> train/<target>/<variant>/seed<s> -> eval/... ->
    concepts -> results -> report

Each stage's key hashes every input that changes its outputs (:mod:`.keys`: its config, the
keys of the stages it reads, model contents, prompt slices, judges), so a changed input re-runs
only what depends on it (see :mod:`.stages`). Responses and judgments are cached under
``<study>/cache`` and training checkpoints under ``<study>/cache/train``, so a killed stage
resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from ..cache import JsonlCache
from ..data.suite import BENIGN, Suite, build_suite
from ..domains import DOMAINS
from ..evaluation import JudgePool, Scoring, mmlu_score, write_eval
from ..io import InputError, read_json, stable_hash, write_json
from ..models import model_identity
from ..progress import console
from ..training import Diagnostics, TrainConfig
from ..training.objectives import objective_class
from .collect import collect_sets
from .config import StudyConfig
from .keys import (baseline_inputs, collect_inputs, concepts_inputs, eval_inputs, kl_sets, train_inputs,
                   train_work_inputs)
from .locks import StageBusy
from .models import ModelSlot
from .names import run_name
from .preflight import STAGES, preflight
from .stages import StageRunner


def mmlu_slices(questions: list, eval_n: int | None, sel_n: int) -> tuple[list, list]:
    """(evaluation, selection) slices of the MMLU questions, disjoint; selection is never empty.

    Selection takes the last ``sel_n`` questions, evaluation the first ``eval_n`` of the others
    (None = all of them). Too few questions for both is an error naming the fields.
    """
    room = len(questions) - sel_n
    if room < (1 if eval_n is None else eval_n):
        raise InputError(f"selection.mmlu_n ({sel_n}) and evaluation.mmlu_n ({eval_n}) need more than the "
                         f"{len(questions)} MMLU questions of data.mmlu_subjects; lower one of them")
    return questions[:room][:eval_n], questions[room:]


class Study:
    """Runs a StudyConfig under ``<output_dir>/<name>``; every stage is cached and resumable."""

    def __init__(self, cfg: StudyConfig, data_dir: str | Path | None = None, root: Path | None = None):
        self.cfg = cfg
        self.data_dir = data_dir
        self.root = Path(root or Path(cfg.output_dir) / cfg.name).resolve()
        self.runner = StageRunner(self.root)
        cache = self.root / "cache"
        self.responses = JsonlCache(cache / "responses.jsonl")
        j = cfg.judges
        self.judges = JudgePool(JsonlCache(cache / "judgments.jsonl"), j.url, j.api_key_env,
                                j.max_new_tokens, cfg.models.batch_size)
        self.scoring = Scoring(self.judges, j.spec_for, self.responses)
        self.slot = ModelSlot(cfg.models)
        self.keys: dict[str, str] = {}
        self.suite: Suite | None = None

    # -- plumbing ---------------------------------------------------------------------------
    def _stage(self, name: str, inputs: dict, fn) -> Path:
        path = self.runner.run(name, inputs, fn)
        self.keys[name] = self.runner.key(inputs)
        return path

    def _dump(self, section) -> dict:
        return section.model_dump(mode="json")

    def eval_records(self) -> dict[str, list]:
        n = self.cfg.evaluation.n_per_set
        return {s: self.suite.get(s, "test")[:n] for s in self.cfg.evaluation.sets}

    def mmlu_records(self) -> tuple[list, list]:
        """(evaluation slice, checkpoint-selection slice) of the MMLU questions (see mmlu_slices)."""
        return mmlu_slices(self.suite.get("mmlu", "test"), self.cfg.evaluation.mmlu_n, self.cfg.selection.mmlu_n)

    def evaluate(self, out_dir: Path, adapter: str | None = None, full_weights: str | None = None) -> None:
        model, tok, backend = self.slot.get(self.cfg.models.aligned, adapter, full_weights)
        rows, scores = self.scoring.run(backend, self.eval_records(), self.cfg.evaluation.decoding)
        mmlu_eval, _ = self.mmlu_records()
        if mmlu_eval:
            scores.append(mmlu_score(model, tok, mmlu_eval, self.cfg.models.batch_size,
                                     self.cfg.evaluation.mmlu_method))
        write_eval(out_dir, rows, scores)

    def preview(self) -> None:
        """Load the suite in memory, writing nothing, and check the MMLU slices (for ``--dry-run``)."""
        self.suite = build_suite(self.cfg.data, self.data_dir)
        self.mmlu_records()

    # -- stages -----------------------------------------------------------------------------
    def data(self) -> None:
        inputs = {"data": self._dump(self.cfg.data)}
        path = self._stage("data", inputs, lambda d: build_suite(self.cfg.data, self.data_dir).write(d))
        self.suite = Suite.read(path)
        self.mmlu_records()  # fail before any model work if the MMLU slices do not fit

    def baseline(self) -> Path:
        return self._stage("baseline", baseline_inputs(self), self.evaluate)

    def collect(self, target: str) -> Path:
        inputs = collect_inputs(self, target)
        return self._stage(f"collect/{target}", inputs, lambda d: collect_sets(
            target, self.suite, self.cfg.collect, self.cfg.models, self.slot, self.scoring, d, inputs["retain"],
            inputs["labels"]))

    def diagnostics(self, tcfg: TrainConfig) -> Diagnostics:
        """What a training run measures at step 0 and each checkpoint: first-token KL on held-out
        prompts of every evaluated domain, MMLU on the selection slice (step 0 memoised per weights,
        questions, method, system prompt and precision)."""
        sel, method = self.cfg.selection, self.cfg.evaluation.mmlu_method
        _, mmlu_sel = self.mmlu_records()  # never empty (mmlu_slices)
        step0 = stable_hash({"model": model_identity(self.cfg.models.aligned), "dtype": self.cfg.models.dtype,
                             "mmlu": [r.id for r in mmlu_sel], "method": method, "system_prompt": tcfg.system_prompt,
                             "full": tcfg.full, "full_dtype": tcfg.full_dtype})
        return Diagnostics(
            kl_prompts={d: [r.prompt for r in self.suite.get(d, "test")[:sel.kl_prompts]] for d in kl_sets(self)},
            mmlu=mmlu_sel, batch_size=self.cfg.models.batch_size, mmlu_method=method,
            step0_mmlu=self.root / "cache" / "mmlu-step0" / f"{step0[:16]}.json")

    def train(self, target: str, variant: str, seed: int) -> Path:
        from .training import train_variant

        tcfg = self.cfg.training_for(variant, seed, target)
        name = run_name(target, variant, seed)
        work_key = self.runner.key(train_work_inputs(self, target, variant, seed))
        work = self.root / "cache" / "train" / f"{name.replace('/', '-')}-{work_key[:8]}"
        return self._stage(f"train/{name}", train_inputs(self, target, variant, seed), lambda d: train_variant(
            self.root / "collect" / target, target, variant, tcfg, work, d, aligned=self.cfg.models.aligned,
            diagnostics=self.diagnostics(tcfg), selection=self.cfg.selection, slot=self.slot, scoring=self.scoring,
            decoding=self.cfg.evaluation.decoding, contrast=self.contrast_prompts(tcfg)))

    def contrast_prompts(self, tcfg: TrainConfig) -> list[str] | None:
        """The benign train prompts a training-free method contrasts the forget set with (None for
        trained methods); the edit reads the first ``n_contrast``."""
        if objective_class(tcfg.method).trains:
            return None
        return [r.prompt for r in self.suite.get(BENIGN, "train")]

    def evaluate_run(self, target: str, variant: str, seed: int) -> Path:
        name = run_name(target, variant, seed)
        trained = self.root / "train" / name

        def run(d: Path) -> None:
            chosen = read_json(trained / "selected.json")
            if chosen["adapter"]:
                self.evaluate(d, adapter=chosen["path"])
            else:
                self.evaluate(d, full_weights=chosen["path"])
            write_json(d / "checkpoint.json", chosen)

        return self._stage(f"eval/{name}", eval_inputs(self, target, variant, seed), run)

    def concepts(self) -> Path | None:
        c = self.cfg.concepts
        if not c.enabled:
            return None

        def run(d: Path) -> None:
            from ..concepts.analysis import METHODS, analyse_concepts

            model, tok, _ = self.slot.get(self.cfg.models.aligned)
            prompts = {dom.value: [r.prompt for r in (self.suite.get(dom.value, "train")
                                                      + self.suite.get(dom.value, "test"))][:c.n_per_domain]
                       for dom in DOMAINS}
            benign = [r.prompt for r in self.suite.get("benign", "train")][:c.n_per_domain]
            for method in (c.method, *(m for m in METHODS if m != c.method)):  # the others reuse the states
                analyse_concepts(model, tok, prompts, benign, d if method == c.method else d / method,
                                 method=method, layers=c.layers, batch_size=self.cfg.models.batch_size,
                                 cache=self.root / "cache" / "states", model_name=self.cfg.models.aligned)

        return self._stage("concepts", concepts_inputs(self), run)

    # -- the whole graph --------------------------------------------------------------------
    def unit_graph(self, want: set[str]) -> list[tuple[str, Callable[[], object], str | None]]:
        """The units of work after ``data`` with the unit each waits for, in sequential order: the
        baseline, each target's collection, each training run (the training and its evaluation,
        after its target's collection) and the concepts. Units share only stages that the claims
        serialise, so an executor that honours the waits can run them in any order."""
        out: list[tuple[str, Callable[[], object], str | None]] = []
        if "baseline" in want:
            out.append(("baseline", self.baseline, None))
        for target in self.cfg.targets if "collect" in want else []:
            t = target.value
            out.append((f"collect/{t}", partial(self.collect, t), None))
            if "train" in want:
                out += [(run_name(t, v, s), partial(self._run_unit, t, v, s, "eval" in want), f"collect/{t}")
                        for v in self.cfg.variants_for(t) for s in self.cfg.seeds]
        if "concepts" in want:
            out.append(("concepts", self.concepts, None))
        return out

    def units(self, want: set[str]) -> list[tuple[str, Callable[[], object]]]:
        """``unit_graph`` for workers that share units without waits: a training run collects its
        target's sets itself (a claimed stage), so a collection is a unit only when no run follows it."""
        graph = self.unit_graph(want)
        awaited = {after for _, _, after in graph if after}
        return [(name, fn) for name, fn, _ in graph if name not in awaited]

    def untrained_runs(self) -> list[dict]:
        """Runs whose collected main training set is empty (the model refused none of the target's
        train prompts), with the file that says so; they are reported, never trained."""
        from ..variants import VARIANT_TABLE
        from .training import training_set_size

        out = []
        for target, variant, seed in self.cfg.runs():
            sets = self.root / "collect" / target
            if (sets / "counts.json").exists() and training_set_size(sets, variant) == 0:
                out.append({"target": target, "variant": variant, "seed": seed, "examples": 0,
                            "set": f"collect/{target}/{VARIANT_TABLE[variant].main}"})
        return out

    def trained_runs(self) -> list[tuple[str, str, int]]:
        """``cfg.runs()`` less ``untrained_runs()``."""
        skip = {(r["target"], r["variant"], r["seed"]) for r in self.untrained_runs()}
        return [run for run in self.cfg.runs() if run not in skip]

    def _run_unit(self, target: str, variant: str, seed: int, evaluate: bool) -> None:
        from .training import training_set_size

        sets = self.collect(target)
        if training_set_size(sets, variant) == 0:
            console.print(f"[yellow]{run_name(target, variant, seed)}: not trained: the collection of {target} kept "
                          f"no {variant} training examples (collect/{target}/counts.json); reported, not dropped[/yellow]")
            return
        self.train(target, variant, seed)
        if evaluate:
            self.evaluate_run(target, variant, seed)

    def run(self, until: str | None = None, worker: tuple[int, int] | None = None,
            shard: tuple[int, int] | None = None,
            executor: Callable[["Study", set[str]], None] | None = None) -> Path:
        """Run every stage, or stop after stage kind ``until``; return the study dir.

        ``shard=(i, n)``: run only units i, i+n, i+2n, ... (a Slurm array task), waiting for any
        stage another task holds. ``worker=(i, n)``: one of n workers sharing the study; it starts
        at its own place in the unit list and puts off a unit whose stage another worker holds.
        Both skip results and report: a plain run afterwards gathers them. ``executor(study,
        want)`` runs the units elsewhere after ``data`` (e.g. :class:`.ray_executor.RayExecutor`);
        this run then finds their stages done and gathers results and report.
        """
        if executor is not None and (worker is not None or shard is not None):
            raise ValueError("an executor runs every unit itself: give it no worker or shard")
        preflight(self.cfg, until)
        stop = STAGES.index(until) if until else len(STAGES) - 1
        want = set(STAGES[:stop + 1])
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.root / "config.json", self._dump(self.cfg))
        self.data()
        if executor is not None:
            executor(self, want)
        units = self.units(want)
        if shard is not None:
            units = units[shard[0]::shard[1]]
        if worker is not None:
            start = worker[0] * len(units) // worker[1]
            self._run_deferring(units[start:] + units[:start])
        else:
            for _, fn in units:
                fn()
        self.slot.release()
        if worker is not None or shard is not None:
            console.print(f"[bold green]done: {', '.join(n for n, _ in units) or 'nothing'}[/bold green]; "
                          "a plain `spillover study` run gathers the results and the report")
        elif "report" in want:
            from ..report import build_report
            from .results import write_results

            write_results(self)
            report = build_report(self.root)
            console.print(f"[bold green]report:[/bold green] {report}")
        return self.root

    def _run_deferring(self, units: list[tuple[str, Callable[[], object]]], poll_s: float = 2.0) -> None:
        """Run units, putting off any whose next stage another worker holds, until all are done."""
        self.runner.wait = False
        try:
            pending = units
            while pending:
                busy = []
                for name, fn in pending:
                    try:
                        fn()
                    except StageBusy:
                        busy.append((name, fn))
                if len(busy) == len(pending):
                    time.sleep(poll_s)
                pending = busy
        finally:
            self.runner.wait = True
