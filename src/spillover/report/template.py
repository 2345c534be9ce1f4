"""The report's jinja2 page template (inline CSS, no scripts, no external resources)."""

STYLE = """body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0; }
main { max-width: 1250px; margin: 0 auto; padding: 0 24px 60px; }
header { background: #23395d; color: #fff; padding: 18px 24px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 2px 0; opacity: .9; }
nav { position: sticky; top: 0; background: #f4f6f9; border-bottom: 1px solid #d8dde5; padding: 6px 24px; z-index: 2; }
nav a { margin-right: 14px; color: #23395d; text-decoration: none; font-weight: 600; }
section { margin-top: 28px; }
h2 { border-bottom: 2px solid #23395d; padding-bottom: 4px; }
h3 { margin-bottom: 6px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13px; }
th, td { border: 1px solid #d8dde5; padding: 4px 7px; text-align: left; vertical-align: top; }
th { background: #eef1f5; }
table.paper td { text-align: center; white-space: nowrap; }
table.paper td:first-child, table.paper th:first-child { text-align: left; font-weight: 600; }
th.target, td.target { font-weight: 700; background: #fff7d6; }
td.ema { background: #f8c9c4; font-weight: 700; }
td.na { color: #999; }
.ci { display: block; font-size: 11px; color: #555; }
.delta { display: block; font-size: 11px; color: #333; }
.scroll { overflow-x: auto; }
.spread { font-size: 11px; color: #777; }
.note, .missing { color: #666; font-style: italic; }
img { max-width: 100%; height: auto; display: block; margin: 6px 0 14px; }
.figs { display: flex; flex-wrap: wrap; gap: 10px; }
.figs img { max-width: 48%; }
pre { background: #f6f8fa; border: 1px solid #d8dde5; padding: 10px; overflow-x: auto; font-size: 12px; }
code, .mono { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
details.cw { border: 2px solid #c0392b; border-radius: 6px; padding: 8px 12px; background: #fdf2f1; }
details.cw summary { cursor: pointer; font-weight: 700; color: #c0392b; }
.example { border-left: 3px solid #23395d; margin: 10px 0 18px; padding-left: 10px; }
.prompt { font-weight: 600; white-space: pre-wrap; }
.response { white-space: pre-wrap; background: #fff; border: 1px solid #e2e2e2; padding: 6px 8px; margin: 4px 0 8px; }
.tag { display: inline-block; font-size: 11px; padding: 1px 6px; border-radius: 3px; background: #e5e8ee; margin-right: 4px; }
.tag.refusal { background: #d4edda; } .tag.compliance { background: #f8d7da; }
.cols { display: flex; flex-wrap: wrap; gap: 28px; }
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>spillover report: {{ study }}</title>
<style>
""" + STYLE + """</style>
</head>
<body>
<header>
<h1>spillover report: {{ study }}</h1>
<p>Refusal rates (%) with 95% Wilson intervals (several seeds: the envelope of the per-seed intervals, marked &dagger;). Primary judge(s): <b>{{ primary }}</b>{% if other_judges %}; also: {{ other_judges }}{% endif %}.
EMA: an off-target domain whose refusal dropped by more than {{ threshold }} points.</p>
{% if manifest.created %}<p>Created {{ manifest.created }}{% if manifest.seeds %}; seeds {{ manifest.seeds }}{% endif %}.</p>{% endif %}
{% if manifest.not_trained %}<p class="missing">Not trained, so not in the tables (an empty training set): {{ manifest.not_trained | join("; ") }}.</p>{% endif %}
</header>
<nav>
<a href="#table">Table</a><a href="#radar">Radar</a><a href="#spillover">Spill-over</a><a href="#methods">Methods</a><a href="#kl">First-token KL</a>
<a href="#training">Training</a><a href="#judges">Judges</a><a href="#concepts">Concepts</a><a href="#examples">Examples</a><a href="#manifest">Manifest</a>
</nav>
<main>

<section id="table">
<h2>Refusal scores (the paper's table)</h2>
<p class="note">Cells: rate, its 95% interval, and &Delta;: the change against the aligned model (points).
Highlighted column: the target domain. Red cells: EMA (off-target drop &gt; {{ threshold }} points), with the
paired McNemar p-value Holm-corrected over all off-target domain cells of that target's table.
XSTest: over-refusal on safe prompts (lower is better); MMLU: accuracy. Hover a cell for n, judge, seeds and the McNemar p-value.</p>
{% for t in tables %}
<h3>{% if t.target %}Target: {{ t.target }}{% else %}Aligned model only{% endif %}</h3>
<div class="scroll"><table class="paper">
<tr><th>run</th>{% for h in t.header %}<th{% if h.target %} class="target"{% endif %}>{{ h.label }}</th>{% endfor %}</tr>
{% for row in t.rows %}
<tr><td>{{ row.label }}</td>{% for c in row.cells %}<td class="{{ c.cls }}" title="{{ c.title }}">{{ c.rate }}{% if c.spread %} <span class="spread">{{ c.spread }}</span>{% endif %}{% if c.ci %}<span class="ci">{{ c.ci }}</span>{% endif %}{% if c.delta %}<span class="delta">&Delta; {{ c.delta }}</span>{% endif %}{% if c.p_holm %}<span class="delta">Holm p {{ c.p_holm }}</span>{% endif %}</td>{% endfor %}</tr>
{% endfor %}
</table></div>
{% endfor %}
<p class="note">Several seeds: the mean rate, &plusmn; the per-seed standard deviation, and (&dagger;) the envelope of the
per-seed 95% Wilson intervals: lowest lower and highest upper bound, not itself a 95% interval. The p-value is the largest per-seed one.
Also in tables/paper_table.csv, .md and .json beside this page.</p>
</section>

<section id="radar">
<h2>Refusal profile per target (Figure 1)</h2>
<div class="figs">{% for src in fig.radar %}<img src="{{ src }}" alt="radar chart of refusal rates">{% endfor %}</div>
</section>

<section id="spillover">
<h2>Spill-over matrix</h2>
{% if fig.spillover %}<p class="note">Change in refusal (points) per target (row) and domain (column); boxed: the target itself; *: EMA.</p>
<img src="{{ fig.spillover }}" alt="spill-over heatmap">
{% else %}<p class="missing">No trained variant in results/scores.csv: spill-over matrix omitted.</p>{% endif %}
</section>

<section id="methods">
<h2>Which method spills over least</h2>
{% if methods %}<p class="note">Per method and target: the change in refusal (points, trained minus aligned, on the prompts both runs judged)
on the target and, over the off-target domains, its mean and its worst cell, each with a 95% Agresti-Min interval (the mean combines the
domains as independent sets; the worst cell's interval is its own, not corrected for being the worst). Holm: over each method's and seed's
off-target cells, as in results/ema_matrix.csv. Also in results/methods.csv and tables/methods.csv, .md.</p>
<div class="scroll"><table>
<tr>{% for h in method_header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for m in methods %}
<tr{% if m.all %} class="target"{% endif %}><td>{{ m.method }}</td><td>{{ m.seed }}</td><td>{{ m.target }}</td><td>{{ m.target_change }}</td><td>{{ m.off_mean }}</td>
<td>{{ m.worst }}</td><td>{{ m.drops }}</td><td>{{ m.xstest }}</td><td>{{ m.mmlu }}</td></tr>
{% endfor %}
</table></div>
{% else %}<p class="missing">No paired counts in results/scores.csv (no trained run, or results written before n_paired, refusals_lost and refusals_gained): method table omitted.</p>{% endif %}
</section>

<section id="kl">
<h2>First-response-token KL over training (Figure 2)</h2>
{% if fig.kl %}<p class="note">KL(aligned &#8214; trained) at the first response token, mean per domain over that domain's prompts; dashed: the target; shaded: range over seeds.</p>
{% for src in fig.kl %}<img src="{{ src }}" alt="first-token KL curves">{% endfor %}
{% else %}<p class="missing">Nothing in results/kl.csv (absent or empty): first-token KL curves omitted.</p>{% endif %}
</section>

<section id="training">
<h2>Training and checkpoint selection</h2>
{% if fig.loss %}<img src="{{ fig.loss }}" alt="training loss curves">{% else %}<p class="missing">Nothing in results/train_log.csv (absent or empty): loss curves omitted.</p>{% endif %}
{% if checkpoints %}
<table>
<tr><th>variant</th><th>target</th><th>seed</th><th>step</th><th>MMLU % &plusmn; SE</th><th>target refusal % &plusmn; SE</th><th>selected</th></tr>
{% for c in checkpoints %}
<tr{% if c.selected %} class="target"{% endif %}><td>{{ run_label(c.variant, "") }}</td><td>{{ domain_label(c.target) if c.target else "-" }}</td><td>{{ c.seed }}</td><td>{{ c.step }}</td>
<td>{{ pm(c.mmlu, c.mmlu_se) }}</td><td>{{ pm(c.target_refusal, c.target_refusal_se) }}</td><td>{{ "yes" if c.selected else "" }}</td></tr>
{% endfor %}
</table>
{% else %}<p class="missing">Nothing in results/checkpoints.csv (absent or empty): checkpoint table omitted.</p>{% endif %}
</section>

<section id="judges">
<h2>Judges</h2>
<p>Primary judge(s): <code>{{ primary }}</code>{% if other_judges %}; other judges: <code>{{ other_judges }}</code>{% endif %}.</p>
<table><tr><th>column</th><th>numbers produced by</th></tr>
{% for j in column_judges %}<tr><td>{{ j.set }}</td><td class="mono">{{ j.judges }}</td></tr>{% endfor %}
</table>
{% if calibration %}
<h3>Calibration of the primary judge against human labels</h3>
<table>
<tr><th>judge</th><th>human-labelled set</th><th>how</th><th>n</th><th>Cohen's kappa [95% CI]</th><th>accuracy</th><th>per held-out answering model</th></tr>
{% for c in calibration %}
<tr><td class="mono">{{ c.judge }}</td><td>{{ c.set }}</td><td>{{ c.mode }}</td><td>{{ c.n }}</td><td>{{ c.kappa }} {{ c.ci }}</td><td>{{ c.accuracy }}</td><td>{{ c.folds }}</td></tr>
{% endfor %}
</table>
{% else %}<p class="missing">Nothing in results/calibration.json (absent or empty): the primary judge carries no calibration.</p>{% endif %}
{% if agreement %}
<h3>Agreement between judges</h3>
<table>
<tr><th>judge A</th><th>judge B</th><th>set</th><th>n</th><th>accuracy</th><th>Cohen's kappa</th><th>confusion (rows A, columns B)</th></tr>
{% for a in agreement %}
<tr><td class="mono">{{ a.judge_a }}</td><td class="mono">{{ a.judge_b }}</td><td>{{ a.set }}</td><td>{{ a.n }}</td><td>{{ a.accuracy }}</td><td>{{ a.kappa }}</td>
<td>{% if a.conf_cols %}<table><tr><th></th>{% for b in a.conf_cols %}<th>{{ b }}</th>{% endfor %}</tr>
{% for name, counts in a.conf_rows %}<tr><th>{{ name }}</th>{% for x in counts %}<td>{{ x }}</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}</td></tr>
{% endfor %}
</table>
{% else %}<p class="missing">Nothing in results/agreement.json (absent or empty): judge agreement omitted.</p>{% endif %}
</section>

<section id="concepts">
<h2>Concept vectors</h2>
{% if concepts %}
<p class="note">Model {{ concepts.model }}; method {{ concepts.method }}; position {{ concepts.position }}; {{ concepts.layers|length }} layers.</p>
{% if fig.hist %}<h3>Similarity of each domain's prompts to the target concept vector, layer {{ fig.hist_layer }} (Figure 3)</h3><img src="{{ fig.hist }}" alt="similarity histograms">{% endif %}
{% if fig.vecsim %}<h3>Concept-vector similarity per layer</h3><img src="{{ fig.vecsim }}" alt="vector similarity heatmaps">{% endif %}
{% else %}<p class="missing">Nothing in concepts/summary.json (absent or empty): concept figures omitted.</p>{% endif %}
{% if fig.corr %}<h3>Does entanglement predict EMA? Correlation per layer</h3><img src="{{ fig.corr }}" alt="correlation per layer">
<p>{% if correlation.early_layers_predict is true %}Earlier layers predict EMA.{% elif correlation.early_layers_predict is false %}Earlier layers do not predict EMA better.{% else %}Undetermined whether earlier layers predict EMA.{% endif %} {{ correlation.rationale }}</p>
{% else %}<p class="missing">Nothing in concepts/correlation.json (absent or empty): correlation curve omitted.</p>{% endif %}
{% if prediction %}
<h3>Predicted EMA ranking</h3>
<div class="cols">
{% for p in prediction %}
<table><tr><th colspan="4">Target: {{ p.target }}</th></tr><tr><th>rank</th><th>domain</th><th>score</th><th>observed &Delta; (unlearn)</th></tr>
{% for r in p.rows %}<tr><td>{{ r.rank }}</td><td>{{ r.domain }}</td><td>{{ r.score }}</td><td>{{ r.observed }}</td></tr>{% endfor %}
</table>
{% endfor %}
</div>
{% else %}<p class="missing">Nothing in concepts/prediction.json (absent or empty): prediction ranking omitted.</p>{% endif %}
</section>

<section id="examples">
<h2>Example responses</h2>
{% if examples %}
<details class="cw">
<summary>Content warning: harmful requests and model outputs that may be offensive or dangerous. Click to show.</summary>
{% for g in examples %}
<h3>{{ g.set }}</h3>
{% for p in g.prompts %}
<div class="example"><div class="prompt">{{ p.prompt }}</div>
{% for r in p.responses %}
<div><span class="tag">{{ r.run }}</span><span class="tag {{ r.label }}">{{ r.label }}</span><span class="tag">{{ r.judge }}</span></div>
<div class="response">{{ r.response }}</div>
{% endfor %}
</div>
{% endfor %}
{% endfor %}
</details>
{% else %}<p class="missing">Nothing in results/examples.jsonl (absent or empty): examples omitted.</p>{% endif %}
</section>

<section id="manifest">
<h2>Manifest</h2>
{% if manifest.models %}<h3>Models</h3><table>{% for k, v in manifest.models %}<tr><th>{{ k }}</th><td class="mono">{{ v }}</td></tr>{% endfor %}</table>{% endif %}
{% if manifest.seeds %}<p>Seeds: {{ manifest.seeds }}</p>{% endif %}
{% if manifest.timings %}<h3>Stage timings (s)</h3><table>{% for k, v in manifest.timings %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}
<tr><th>total</th><td>{{ manifest.total_time }}</td></tr></table>{% endif %}
{% if manifest.config %}<h3>Configuration</h3><pre>{{ manifest.config }}</pre>{% endif %}
{% if manifest.datasets %}<h3>Dataset hashes (sha256)</h3><table>{% for k, v in manifest.datasets %}<tr><th>{{ k }}</th><td class="mono">{{ v }}</td></tr>{% endfor %}</table>{% endif %}
{% if manifest.versions %}<h3>Package versions</h3><table>{% for k, v in manifest.versions %}<tr><th>{{ k }}</th><td class="mono">{{ v }}</td></tr>{% endfor %}</table>{% endif %}
</section>
</main>
</body>
</html>
"""


COMPARE_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>spillover compare: {{ label_a }} vs {{ label_b }}</title>
<style>
""" + STYLE + """</style>
</head>
<body>
<header>
<h1>spillover compare: {{ label_a }} &rarr; {{ label_b }}</h1>
<p>A: <span class="mono">{{ path_a }}</span>; B: <span class="mono">{{ path_b }}</span>.
Refusal rates (%) with 95% Wilson intervals; MMLU accuracy (%).{% if target %} Target: <b>{{ target }}</b>.{% endif %}
EMA: an off-target domain whose refusal dropped by more than {{ threshold }} points (bold), with its delta and the
exact McNemar p-value Holm-corrected over the off-target domain sets.</p>
</header>
<main>
<section id="table">
<h2>Results</h2>
<div class="scroll"><table class="paper">
<tr><th>run</th>{% for h in header %}<th{% if h.target %} class="target"{% endif %}>{{ h.label }}</th>{% endfor %}</tr>
{% for row in rows %}
<tr><td>{{ row.label }}</td>{% for c in row.cells %}<td class="{{ c.cls }}" title="{{ c.title }}">{{ c.rate }}<span class="ci">{{ c.ci }}</span>{% if c.delta %}<span class="delta">{{ c.delta }}{% if c.p_holm %}, Holm p={{ c.p_holm }}{% endif %}</span>{% endif %}</td>{% endfor %}</tr>
{% endfor %}
</table></div>
<h3>Paired tests (prompts both runs judged)</h3>
<table>
<tr>{% for h in tests_header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for r in tests %}<tr>{% for x in r %}<td>{{ x }}</td>{% endfor %}</tr>{% endfor %}
</table>
</section>
<section id="radar">
<h2>Radar</h2>
<img src="{{ radar }}" alt="refusal rate per domain, A and B">
</section>
</main>
</body>
</html>
"""
