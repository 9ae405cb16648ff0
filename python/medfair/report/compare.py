"""The comparison page of two runs of the same vignettes (before and after)."""

from __future__ import annotations

from html import escape
from typing import Any

from . import svg
from .html import fmt, is_number, num, page, slug, table, text_value
from .runs import Run
from .single import question_path


def metric_rows(question: str, target: str, axes: list[str]) -> list[tuple[str, list[Any], bool]]:
    """Return (label, path into summary.json, is a p-value) for each compared metric."""
    def metric(level: str, key: str) -> list[Any]:
        return question_path(question, level, "metrics", key)

    gap = f"p/{target}/max_gap"
    rows = [
        (f"Max gap in P({target}), intersectional", metric("intersectional", f"{gap}/value"), False),
        ("Max gap, interval low", metric("intersectional", f"{gap}/ci_low"), False),
        ("Max gap, interval high", metric("intersectional", f"{gap}/ci_high"), False),
    ]
    rows += [(f"Max gap in P({target}), {axis}", metric(axis, f"{gap}/value"), False) for axis in axes]
    rows += [
        ("Mean per-vignette gap", metric("intersectional", "gap/mean"), False),
        ("Median per-vignette gap", metric("intersectional", "gap/median"), False),
        ("90th percentile of per-vignette gaps", metric("intersectional", "gap/q90"), False),
        ("Largest per-vignette gap", metric("intersectional", "gap/max"), False),
        ("Flip rate", metric("intersectional", "flip_rate"), False),
        ("Friedman p-value", metric("intersectional", "friedman/p_value"), True),
        ("Kendall's W", metric("intersectional", "friedman/kendall_w"), False),
        (f"Ratio between groups, P({target})", metric("intersectional", f"p/{target}/ratio/between_groups"), False),
        ("Overall accuracy", question_path(question, "intersectional", "overall", "accuracy"), False),
        ("Accuracy gap", metric("intersectional", "accuracy/max_gap/value"), False),
    ]
    return rows


def lookup(summary: dict[str, Any], path: list[Any]) -> Any:
    value: Any = summary
    for key in path:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and isinstance(key, int) and key < len(value):
            value = value[key]
        else:
            return None
    return value


def metrics_table(before: Run, after: Run, question: str) -> str:
    report = after.questions[question]
    rows = []
    for label, path, p_value in metric_rows(question, report["target_option"], report["axes"]):
        old, new = lookup(before.summary, path), lookup(after.summary, path)
        # The change is a plain difference of two numbers read from the run files.
        change = new - old if is_number(old) and is_number(new) else None
        rows.append([escape(label), num(old, path, p_value=p_value, run="before"),
                     num(new, path, p_value=p_value, run="after"),
                     "" if p_value else num(change, path, run="change")])
    for path, label in [(["coverage", "mean"], "Mean option coverage")]:
        old, new = lookup(before.summary, path), lookup(after.summary, path)
        change = new - old if is_number(old) and is_number(new) else None
        rows.append([label, num(old, path, run="before"), num(new, path, run="after"), num(change, path, run="change")])
    return table(["Metric", "Before", "After", "Change (after - before)"], rows, [False, True, True, True])


def paired_test(before: Run, after: Run, question: str) -> tuple[str, dict[str, Any]]:
    """Run the C++ paired test of the per-vignette gap change and describe it."""
    import medfair

    old = {v: g for v, g in before.questions[question]["levels"]["intersectional"]["vignette_gaps"].items()
           if is_number(g)}
    new = {v: g for v, g in after.questions[question]["levels"]["intersectional"]["vignette_gaps"].items()
           if is_number(g)}
    try:
        change = medfair.stats.compare_vignette_gaps(old, new)
    except medfair.DataError as error:
        raise medfair.DataError(f"{before.folder} vs {after.folder}, question '{question}': {error}") from None
    base = ["comparison", question]
    wilcoxon = change["wilcoxon"]
    paired_t = change.get("paired_t") or {}
    rows = [
        ["Vignettes in both runs", num(change["n_vignettes"], base + ["n_vignettes"], run="paired")],
        ["Only in before / only in after",
         f"{num(change['only_before'], base + ['only_before'], run='paired')} / "
         f"{num(change['only_after'], base + ['only_after'], run='paired')}"],
        ["Mean gap before", num(change["mean_before"], base + ["mean_before"], run="paired")],
        ["Mean gap after", num(change["mean_after"], base + ["mean_after"], run="paired")],
        ["Wilcoxon signed-rank statistic", num(wilcoxon["statistic"], base + ["wilcoxon", "statistic"], 1, run="paired")],
        ["Wilcoxon p-value", num(wilcoxon["p_value"], base + ["wilcoxon", "p_value"], p_value=True, run="paired")
         + f" ({escape(str(wilcoxon.get('method')))})"],
        ["Rank-biserial correlation", num(wilcoxon["rank_biserial"], base + ["wilcoxon", "rank_biserial"], run="paired")],
        ["Paired t statistic", num(paired_t.get("statistic"), base + ["paired_t", "statistic"], 2, run="paired")],
        ["Paired t degrees of freedom", num(paired_t.get("df"), base + ["paired_t", "df"], 0, run="paired")],
        ["Paired t p-value", num(paired_t.get("p_value"), base + ["paired_t", "p_value"], p_value=True, run="paired")],
        ["Mean change (after - before)", num(paired_t.get("mean_difference"), base + ["paired_t", "mean_difference"],
                                             run="paired")],
        ["Cohen's d_z", num(paired_t.get("cohen_dz"), base + ["paired_t", "cohen_dz"], run="paired")],
    ]
    html = ("<p>Both tests pair each vignette's counterfactual gap in the two runs and test after - before. "
            "A negative mean change and a small p-value indicate smaller gaps after; the paired t-test assumes "
            "roughly normal changes, the Wilcoxon test does not.</p>" + table(["Statistic", "Value"], rows,
                                                                             [False, True]))
    return html, change


def group_bars(run: Run, question: str, chart_id: str, name: str) -> str:
    report = run.questions[question]
    target = report["target_option"]
    level = report["levels"]["intersectional"]
    key = f"p/{target}/mean"
    rows = [(g, level["by_group"][g].get(key), level["by_group"][g].get(f"{key}/ci_low"),
             level["by_group"][g].get(f"{key}/ci_high")) for g in level["groups"]]
    return svg.interval_bars(chart_id, f"{name}: mean P({target}) by group, question {question}",
                             f"Group means of {target} in the {name} run with vignette-bootstrap intervals.",
                             f"Mean P({target}), {name}", rows)


def question_section(before: Run, after: Run, question: str) -> str:
    anchor = f"q-{slug(question)}"
    paired_html, change = paired_test(before, after, question)
    old = before.questions[question]["levels"]["intersectional"]["vignette_gaps"]
    new = after.questions[question]["levels"]["intersectional"]["vignette_gaps"]
    items = [(v, old[v], new[v]) for v in old if v in new and is_number(old[v]) and is_number(new[v])]
    items.sort(key=lambda item: -item[1])
    dots = svg.paired_dots(f"{anchor}-dots", f"Per-vignette gap before and after, question {question}",
                           "One row per vignette in both runs: the counterfactual gap before and after, joined by "
                           "a line.", "Per-vignette counterfactual gap (max - min across groups)", items)
    return "\n".join([
        f'<section id="{anchor}"><h2>Question "{escape(question)}"</h2>',
        "<h3>Headline metrics</h3>", metrics_table(before, after, question),
        "<h3>Paired test of the per-vignette gap change</h3>", paired_html, dots,
        "<h3>Group means side by side</h3>",
        '<div class="side-by-side">', group_bars(before, question, f"{anchor}-before", "before"),
        group_bars(after, question, f"{anchor}-after", "after"), "</div>",
        f"<p class=\"note\">{fmt(change['n_vignettes'])} vignettes are paired by id.</p>",
        "</section>"])


def settings_table(before: Run, after: Run) -> str:
    rows = []
    for key, label in [("model", "Model file"), ("model_sha256", "Model SHA-256"), ("task", "Task"),
                       ("prompting", "Prompting"), ("seed", "Seed"), ("n_prompts", "Scored prompts"),
                       ("medfair_version", "medfair version"), ("torch_version", "torch version"),
                       ("created", "Created")]:
        cells = []
        for run, name in [(before, "before"), (after, "after")]:
            value = run.settings.get(key)
            cell = num(value, ["settings", key], run=name) if is_number(value) else text_value(
                value, ["settings", key], run=name)
            cells.append(f'<span class="hash">{cell}</span>' if key == "model_sha256" else cell)
        rows.append([label, *cells])
    for run_index, (run, name) in enumerate([(before, "before"), (after, "after")]):
        files = run.settings.get("data_files") or []
        listing = "<br>".join(text_value(f.get("path"), ["settings", "data_files", i, "path"], run=name)
                              for i, f in enumerate(files))
        if run_index == 0:
            rows.append(["Data files", listing, ""])
        else:
            rows[-1][2] = listing
    rows.append(["Run folder", escape(str(before.folder)), escape(str(after.folder))])
    return ('<section id="settings"><h2>Run settings</h2>'
            + table(["Setting", "Before", "After"], rows) + "</section>")


def render_comparison_page(before: Run, after: Run) -> str:
    """Return the complete HTML page comparing two runs."""
    import medfair

    questions = [q for q in before.questions if q in after.questions]
    if not questions:
        raise medfair.DataError(
            f"{before.folder} and {after.folder}: no question is in both runs ({list(before.questions)} before, "
            f"{list(after.questions)} after); compare two audits of the same task")
    sections = [question_section(before, after, q) for q in questions]
    skipped = sorted(set(before.questions) ^ set(after.questions))
    note = ""
    if skipped:
        note = f'<p class="warning">Questions in only one run, not compared: {escape(", ".join(skipped))}.</p>'
    nav = [(f"q-{slug(q)}", f"Question {q}") for q in questions] + [("settings", "Settings")]
    lead = (f"Before: <span class=\"hash\">{escape(str(before.folder))}</span>; after: "
            f"<span class=\"hash\">{escape(str(after.folder))}</span>. Changes are after minus before, so a negative "
            "change in a gap means a smaller counterfactual gap after. Smaller gaps on these vignettes do not show "
            "that fairness-related harms are gone.")
    task = after.settings.get("task", "audit")
    return page(f"medfair audit comparison: {task}", lead, nav, note + "\n".join(sections) + settings_table(before, after))
