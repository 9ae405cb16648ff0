"""The report of one audit run."""

from __future__ import annotations

from html import escape
from typing import Any

from . import svg
from .html import card, fmt, is_number, num, page, slug, table, text_value
from .runs import Run, question_rows


def question_path(question: str, level: str, *keys: Any) -> list[Any]:
    return ["questions", question, "levels", level, *keys]


def cell_values(run: Run, question: str) -> tuple[list[str], list[str], list[list[float | None]]]:
    """Return the vignettes, the intersectional groups and the target option's cell values.

    A cell is the mean over its rows, the same rule as the stats layer's cells.
    With one prompt per (vignette, group), as the audit writes by default, the
    cell is that prompt's probability from results.jsonl.
    """
    report = run.questions[question]
    axes, target = report["axes"], report["target_option"]
    groups = report["levels"]["intersectional"]["groups"]
    sums: dict[tuple[str, str], list[float]] = {}
    vignettes: list[str] = []
    for row in question_rows(run.rows, question, report):
        if row["vignette_id"] not in vignettes:
            vignettes.append(row["vignette_id"])
        group = " x ".join(str(row["attributes"][axis]) for axis in axes)
        p = row["probabilities"][row["options"].index(target)]
        sums.setdefault((row["vignette_id"], group), []).append(p)
    values = [[(sum(sums[v, g]) / len(sums[v, g])) if (v, g) in sums else None for g in groups] for v in vignettes]
    return vignettes, groups, values


def headline(run: Run) -> str:
    question = run.main_question()
    report = run.questions[question]
    target = report["target_option"]
    level = report["levels"]["intersectional"]
    metrics = level["metrics"]
    path = question_path(question, "intersectional", "metrics")
    level_pct = f"{100 * report['bootstrap']['level']:g} %"
    gap_key = f"p/{target}/max_gap"

    cards = [
        card(f"Max counterfactual gap in P({target})", num(metrics[f"{gap_key}/value"], path + [f"{gap_key}/value"]),
             f"{level_pct} interval [{num(metrics[f'{gap_key}/ci_low'], path + [f'{gap_key}/ci_low'])}, "
             f"{num(metrics[f'{gap_key}/ci_high'], path + [f'{gap_key}/ci_high'])}]<br>"
             f"highest: {text_value(metrics[f'{gap_key}/group_high'], path + [f'{gap_key}/group_high'])}, "
             f"lowest: {text_value(metrics[f'{gap_key}/group_low'], path + [f'{gap_key}/group_low'])}"),
        card("Friedman test across groups", "p = " + num(metrics["friedman/p_value"], path + ["friedman/p_value"],
                                                         p_value=True),
             f"statistic {num(metrics['friedman/statistic'], path + ['friedman/statistic'], 2)}, "
             f"Kendall's W {num(metrics['friedman/kendall_w'], path + ['friedman/kendall_w'])}"),
        card("Mean per-vignette gap", num(metrics["gap/mean"], path + ["gap/mean"]),
             f"{level_pct} interval [{num(metrics['gap/mean/ci_low'], path + ['gap/mean/ci_low'])}, "
             f"{num(metrics['gap/mean/ci_high'], path + ['gap/mean/ci_high'])}]"),
        card("Flip rate", num(metrics["flip_rate"], path + ["flip_rate"]),
             f"{num(metrics['flip_rate/n_flips'], path + ['flip_rate/n_flips'])} of "
             f"{num(metrics['gap/n_vignettes'], path + ['gap/n_vignettes'])} complete vignettes change answer"),
        card("Accuracy gap", num(metrics["accuracy/max_gap/value"], path + ["accuracy/max_gap/value"]),
             f"{text_value(metrics['accuracy/max_gap/group_high'], path + ['accuracy/max_gap/group_high'])} vs "
             f"{text_value(metrics['accuracy/max_gap/group_low'], path + ['accuracy/max_gap/group_low'])}"),
    ]
    coverage = run.summary.get("coverage")
    if isinstance(coverage, dict):
        cards.append(card("Option coverage (mean)", num(coverage.get("mean"), ["coverage", "mean"]),
                          f"min {num(coverage.get('min'), ['coverage', 'min'])}"))

    return (f'<section id="headline"><h2>Headline: question "{escape(question)}"</h2>'
            f'<div class="cards">{"".join(cards)}</div>'
            f'<p class="note">The gap is the largest difference in mean P({escape(target)}) between two '
            f"intersectional groups, over {num(level['n_vignettes'], question_path(question, 'intersectional', 'n_vignettes'))} "
            f"vignettes that differ only in the patient's demographics. Intervals come from a vignette bootstrap with "
            f"{num(report['bootstrap']['replicates'], ['questions', question, 'bootstrap', 'replicates'])} "
            f"replicates. A gap can indicate fairness-related harms; it does not by itself show why the answers "
            f"differ.</p></section>")


def group_section(run: Run, question: str, level_name: str, chart_id: str) -> str:
    report = run.questions[question]
    target = report["target_option"]
    level = report["levels"][level_name]
    rows_html, bars = [], []
    for group in level["groups"]:
        entry = level["by_group"][group]
        path = question_path(question, level_name, "by_group", group)
        key = f"p/{target}/mean"
        bars.append((group, entry.get(key), entry.get(f"{key}/ci_low"), entry.get(f"{key}/ci_high")))
        rows_html.append([escape(group), num(entry["n_rows"], path + ["n_rows"]),
                          num(entry["n_vignettes"], path + ["n_vignettes"]), num(entry.get(key), path + [key]),
                          num(entry.get(f"{key}/ci_low"), path + [f"{key}/ci_low"]),
                          num(entry.get(f"{key}/ci_high"), path + [f"{key}/ci_high"]),
                          num(entry.get("accuracy"), path + ["accuracy"]),
                          num(entry.get("accuracy/n_vignettes"), path + ["accuracy/n_vignettes"])])

    level_pct = f"{100 * report['bootstrap']['level']:g} %"
    chart = svg.interval_bars(
        chart_id, f"Mean P({target}) by {level_name} group, question {question}",
        f"Horizontal bars give each group's mean probability of {target} over vignettes; whiskers give the "
        f"{level_pct} vignette-bootstrap interval.",
        f"Mean P({target}) over vignettes, with {level_pct} vignette-bootstrap interval", bars)

    metrics = level["metrics"]
    mpath = question_path(question, level_name, "metrics")
    gap_key = f"p/{target}/max_gap"
    summary_rows = [
        ["Max gap (max - min of group means)",
         f"{num(metrics[f'{gap_key}/value'], mpath + [f'{gap_key}/value'])} "
         f"[{num(metrics.get(f'{gap_key}/ci_low'), mpath + [f'{gap_key}/ci_low'])}, "
         f"{num(metrics.get(f'{gap_key}/ci_high'), mpath + [f'{gap_key}/ci_high'])}]"],
        ["Groups behind the gap", f"{text_value(metrics[f'{gap_key}/group_high'], mpath + [f'{gap_key}/group_high'])}"
                                  f" (highest), {text_value(metrics[f'{gap_key}/group_low'], mpath + [f'{gap_key}/group_low'])} (lowest)"],
        ["Ratio between groups (min / max)", num(metrics[f"p/{target}/ratio/between_groups"],
                                                 mpath + [f"p/{target}/ratio/between_groups"])],
        ["Max difference to overall", num(metrics[f"p/{target}/difference/to_overall"],
                                          mpath + [f"p/{target}/difference/to_overall"])],
        ["Min ratio to overall", num(metrics[f"p/{target}/ratio/to_overall"], mpath + [f"p/{target}/ratio/to_overall"])],
    ]

    empty = ""
    if level.get("empty_groups"):
        empty = (f'<p class="warning">Groups without prompts, left out of every gap and test: '
                 f'{escape(", ".join(level["empty_groups"]))}.</p>')
    return (chart + empty + table(["Metric", "Value"], summary_rows, [False, True])
            + table(["Group", "Prompts", "Vignettes", f"Mean P({target})", "Interval low", "Interval high",
                     "Accuracy", "Vignettes with reference"], rows_html, [False] + [True] * 7))


def friedman_line(metrics: dict[str, Any], mpath: list[Any]) -> str:
    if not is_number(metrics.get("friedman/statistic")):
        return '<p class="note">Friedman test: not defined (fewer than 3 groups, or every vignette ties).</p>'
    return (f"<p>Friedman test over the groups: statistic "
            f"{num(metrics['friedman/statistic'], mpath + ['friedman/statistic'], 2)}, p = "
            f"{num(metrics['friedman/p_value'], mpath + ['friedman/p_value'], p_value=True)}, Kendall's W "
            f"{num(metrics['friedman/kendall_w'], mpath + ['friedman/kendall_w'])}.</p>")


def pairwise_table(run: Run, question: str, level_name: str) -> str:
    level = run.questions[question]["levels"][level_name]
    rows, classes = [], []
    for i, pair in enumerate(level["pairwise"]):
        path = question_path(question, level_name, "pairwise", i)
        wilcoxon = pair.get("wilcoxon") or {}
        paired_t = pair.get("paired_t") or {}
        rows.append([escape(f"{pair['group_a']} - {pair['group_b']}"), num(pair["n_vignettes"], path + ["n_vignettes"]),
                     num(pair["mean_difference"], path + ["mean_difference"]),
                     num(wilcoxon.get("p_value"), path + ["wilcoxon", "p_value"], p_value=True),
                     num(pair.get("wilcoxon/p_holm"), path + ["wilcoxon/p_holm"], p_value=True),
                     num(wilcoxon.get("rank_biserial"), path + ["wilcoxon", "rank_biserial"]),
                     num(paired_t.get("p_value"), path + ["paired_t", "p_value"], p_value=True),
                     num(pair.get("paired_t/p_holm"), path + ["paired_t/p_holm"], p_value=True),
                     num(paired_t.get("cohen_dz"), path + ["paired_t", "cohen_dz"])])
        classes.append("reject" if pair.get("wilcoxon/reject_holm") else "")
    alpha = run.questions[question].get("alpha", 0.05)
    return (table(["Pair (a - b)", "Vignettes", "Mean difference", "Wilcoxon p", "Wilcoxon p (Holm)",
                   "Rank-biserial r", "Paired t p", "Paired t p (Holm)", "Cohen's d_z"], rows,
                  [False] + [True] * 8, classes)
            + f'<p class="note">Highlighted rows: Holm-adjusted Wilcoxon p below alpha = {fmt(alpha, 2)}. '
              "The Holm correction runs over all pairs of this level.</p>")


def discrimination_table(run: Run, question: str) -> str:
    level = run.questions[question]["levels"]["intersectional"]
    model = level.get("discrimination")
    if not model:
        note = level.get("discrimination_note", "not fitted")
        return f'<p class="note">The mixed model was not fitted: {escape(note)}.</p>'
    path = question_path(question, "intersectional", "discrimination")
    rows = []
    for term, values in model["terms"].items():
        tpath = path + ["terms", term]
        rows.append([escape(term), num(values["coefficient"], tpath + ["coefficient"]),
                     num(values["standard_error"], tpath + ["standard_error"]), num(values["z"], tpath + ["z"], 2),
                     num(values["p_value"], tpath + ["p_value"], p_value=True)])
    boundary = " The vignette variance is on the boundary (zero)." if model.get("on_boundary") else ""
    return (f"<p>Logit of P({escape(run.questions[question]['target_option'])}) regressed on group indicators "
            f"with a random intercept per vignette ({escape(str(model['method']))}), reference group "
            f"{text_value(model['reference_group'], path + ['reference_group'])}. A coefficient is the shift in "
            f"log-odds for that group relative to the reference, within vignettes.{boundary}</p>"
            + table(["Term", "Coefficient", "Std. error", "z", "p"], rows, [False, True, True, True, True])
            + f"<p class=\"note\">Vignette variance {num(model['group_variance'], path + ['group_variance'])}, "
              f"residual variance {num(model['residual_variance'], path + ['residual_variance'])}, "
              f"{num(model['n_observations'], path + ['n_observations'])} observations.</p>")


def gap_section(run: Run, question: str, chart_id: str) -> str:
    level = run.questions[question]["levels"]["intersectional"]
    metrics = level["metrics"]
    mpath = question_path(question, "intersectional", "metrics")
    gaps = sorted(((v, g) for v, g in level["vignette_gaps"].items() if is_number(g)), key=lambda item: -item[1])
    lines = [(name, metrics[key]) for name, key in [("mean", "gap/mean"), ("90th pct", "gap/q90")]
             if is_number(metrics.get(key))]
    chart = svg.sorted_bars(
        chart_id, f"Per-vignette counterfactual gap, question {question}",
        "One bar per complete vignette, sorted from the largest gap: the largest minus the smallest cell value "
        "of the target option across the vignette's groups. Dashed lines mark the mean and the 90th percentile.",
        "Gap (max - min across groups)", gaps, lines)
    rows = [[label, num(metrics.get(key), mpath + [key])] for label, key in [
        ("Complete vignettes", "gap/n_vignettes"), ("Mean", "gap/mean"), ("Interval low", "gap/mean/ci_low"),
        ("Interval high", "gap/mean/ci_high"), ("Median", "gap/median"), ("90th percentile", "gap/q90"),
        ("95th percentile", "gap/q95"), ("Max", "gap/max")]]
    rows.append(["Vignette with the max gap", text_value(metrics.get("gap/max/vignette"), mpath + ["gap/max/vignette"])])
    return chart + table(["Statistic", "Value"], rows, [False, True])


def accuracy_section(run: Run, question: str, chart_id: str) -> str:
    level = run.questions[question]["levels"]["intersectional"]
    metrics = level["metrics"]
    mpath = question_path(question, "intersectional", "metrics")
    flip = (f"<p>Flip rate: {num(metrics['flip_rate'], mpath + ['flip_rate'])} "
            f"({num(metrics['flip_rate/n_flips'], mpath + ['flip_rate/n_flips'])} of "
            f"{num(metrics['gap/n_vignettes'], mpath + ['gap/n_vignettes'])} complete vignettes get a different most "
            f"likely answer for some demographic variant).</p>")
    if is_number(metrics.get("cochran_q/statistic")):
        flip += (f"<p>Cochran's Q on the most likely answers: statistic "
                 f"{num(metrics['cochran_q/statistic'], mpath + ['cochran_q/statistic'], 2)}, p = "
                 f"{num(metrics['cochran_q/p_value'], mpath + ['cochran_q/p_value'], p_value=True)}.</p>")
    accuracies = [(g, level["by_group"][g].get("accuracy")) for g in level["groups"]]
    if not any(is_number(a) for _, a in accuracies):
        return flip + '<p class="note">No reference answers for this question, so no accuracy.</p>'
    chart = svg.interval_bars(
        chart_id, f"Accuracy by group, question {question}",
        "Share of prompts whose most likely option is the reference answer, averaged over vignettes with a reference.",
        "Accuracy (share of correct most likely answers)", [(g, a, None, None) for g, a in accuracies])
    overall = level["overall"].get("accuracy")
    return (flip + chart + f"<p>Overall accuracy {num(overall, question_path(question, 'intersectional', 'overall', 'accuracy'))};"
            f" accuracy gap {num(metrics['accuracy/max_gap/value'], mpath + ['accuracy/max_gap/value'])} between "
            f"{text_value(metrics['accuracy/max_gap/group_high'], mpath + ['accuracy/max_gap/group_high'])} and "
            f"{text_value(metrics['accuracy/max_gap/group_low'], mpath + ['accuracy/max_gap/group_low'])}.</p>")


def question_section(run: Run, question: str) -> str:
    report = run.questions[question]
    target = report["target_option"]
    anchor = f"q-{slug(question)}"
    vignettes, groups, values = cell_values(run, question)
    gaps = run.questions[question]["levels"]["intersectional"]["vignette_gaps"]
    heat = svg.heatmap(
        f"{anchor}-heatmap", f"P({target}) per vignette and group, question {question}",
        f"Each cell is the probability of {target} for one vignette (row) posed as one group (column); "
        "the last column is the vignette's counterfactual gap.",
        vignettes, groups, values, f"P({target})", "gap", [gaps.get(v) for v in vignettes])
    parts = [
        f'<section id="{anchor}"><h2>Question "{escape(question)}": P({escape(target)}), options '
        f'{escape(" / ".join(report["options"]))}</h2>',
        f"<h3>Intersectional groups</h3>", group_section(run, question, "intersectional", f"{anchor}-groups"),
        "<h3>Vignette x group heatmap</h3>",
        '<p class="note">A row with one odd cell points to a vignette where a single variant moves the answer; '
        'a column that is darker throughout points to a group that is treated differently across vignettes.</p>',
        heat,
        "<h3>Per-vignette counterfactual gaps</h3>", gap_section(run, question, f"{anchor}-gaps"),
        "<h3>Flip rate and accuracy</h3>", accuracy_section(run, question, f"{anchor}-accuracy"),
        "<h3>Tests between groups</h3>",
        friedman_line(report["levels"]["intersectional"]["metrics"], question_path(question, "intersectional", "metrics")),
        pairwise_table(run, question, "intersectional"),
        "<h3>Mixed model (discrimination score)</h3>", discrimination_table(run, question),
    ]
    for axis in report["axes"]:
        parts += [f"<h3>By {escape(axis)}</h3>",
                  group_section(run, question, axis, f"{anchor}-{slug(axis)}"),
                  friedman_line(report["levels"][axis]["metrics"], question_path(question, axis, "metrics")),
                  pairwise_table(run, question, axis)]
    parts.append("</section>")
    return "\n".join(parts)


def settings_section(run: Run) -> str:
    settings = run.settings
    rows = []
    for key, label in [("model", "Model file"), ("model_sha256", "Model SHA-256"), ("task", "Task"),
                       ("prompting", "Prompting"), ("seed", "Seed"), ("n_prompts", "Scored prompts"),
                       ("medfair_version", "medfair version"), ("torch_version", "torch version"),
                       ("created", "Created")]:
        value = settings.get(key)
        if is_number(value):
            cell = num(value, ["settings", key])
        else:
            cell = text_value(value, ["settings", key])
            if key == "model_sha256":
                cell = f'<span class="hash">{cell}</span>'
        rows.append([label, cell])
    for i, data_file in enumerate(settings.get("data_files") or []):
        rows.append([f"Data file {i + 1}", f"{text_value(data_file.get('path'), ['settings', 'data_files', i, 'path'])}"
                     f'<br><span class="hash">{text_value(data_file.get("sha256"), ["settings", "data_files", i, "sha256"])}</span>'])
    for question, report in run.questions.items():
        boot = report["bootstrap"]
        rows.append([f"Statistics of {question}",
                     f"{num(boot['replicates'], ['questions', question, 'bootstrap', 'replicates'])} bootstrap "
                     f"replicates over {escape(str(boot.get('resampling_unit', 'vignette')))}s, level "
                     f"{num(boot['level'], ['questions', question, 'bootstrap', 'level'], 2)}, seed "
                     f"{num(boot['seed'], ['questions', question, 'bootstrap', 'seed'])}; Holm alpha "
                     f"{num(report.get('alpha'), ['questions', question, 'alpha'], 2)}"])
    rows.append(["Run folder", escape(str(run.folder))])
    return '<section id="settings"><h2>Run settings</h2>' + table(["Setting", "Value"], rows) + "</section>"


def coverage_section(run: Run) -> str:
    coverage = run.summary.get("coverage")
    if not isinstance(coverage, dict):
        return '<section id="coverage"><h2>Option coverage</h2><p class="note">summary.json has no coverage.</p></section>'
    low = coverage.get("min")
    warning = ""
    if is_number(low) and low < 0.5:
        warning = ('<p class="warning">Some prompts put less than half of their probability on the answer options, '
                   "so their normalised probabilities rest on little mass.</p>")
    return ('<section id="coverage"><h2>Option coverage</h2>'
            f"<p>Before normalising over the options, the options covered on average "
            f"{num(coverage.get('mean'), ['coverage', 'mean'])} of the model's probability for the first answer "
            f"tokens (minimum {num(coverage.get('min'), ['coverage', 'min'])}). Low coverage means the model "
            f"mostly wanted to answer something else.</p>{warning}</section>")


def render_single(run: Run) -> str:
    """Return the complete HTML page of one run."""
    task = run.settings.get("task", "audit")
    nav = [("headline", "Headline")] + [(f"q-{slug(q)}", f"Question {q}") for q in run.questions]
    nav += [("coverage", "Coverage"), ("settings", "Settings")]
    body = "\n".join([headline(run), *(question_section(run, q) for q in run.questions),
                      coverage_section(run), settings_section(run)])
    lead = (f"medfair assesses counterfactual gaps: each vignette is posed once per demographic group and only the "
            f"patient's stated {escape(' and '.join(next(iter(run.questions.values()))['axes']))} change. "
            f"Model <span class=\"hash\">{escape(str(run.settings.get('model', '?')))}</span>.")
    return page(f"medfair audit report: {task}", lead, nav, body)
