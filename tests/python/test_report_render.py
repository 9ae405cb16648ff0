"""Render the report pages from the synthetic run folders and check them
against the run files: every number carries its source path into
summary.json, so each one is compared with the value it claims to show."""

from __future__ import annotations

import json
import math
import pathlib
import re
import shutil
from html.parser import HTMLParser

import pytest
from scipy import stats

import medfair
from medfair import report
from medfair.cli import main
from medfair.report.html import fmt_p

ROOT = pathlib.Path(__file__).resolve().parents[2]
BEFORE = ROOT / "tests" / "fixtures" / "audit_before"
AFTER = ROOT / "tests" / "fixtures" / "audit_after"


class PageParser(HTMLParser):
    """Collect the sourced numbers, SVG elements and resource attributes of a page."""

    def __init__(self):
        super().__init__()
        self.values = []          # (attrs, shown text)
        self.tags = []            # (tag, attrs)
        self._open_value = None
        self._text = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "span" and "data-path" in attrs:
            self._open_value = attrs
            self._text = []

    def handle_data(self, data):
        if self._open_value is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "span" and self._open_value is not None:
            self.values.append((self._open_value, "".join(self._text)))
            self._open_value = None


def parse(path: pathlib.Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def lookup(document, path):
    value = document
    for key in path:
        value = value[key]
    return value


def load_summary(folder):
    return json.loads((folder / "summary.json").read_text(encoding="utf-8"))


def load_rows(folder):
    return [json.loads(line) for line in (folder / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def check_value(attrs, text, expected):
    """Check one sourced span: exact value and the text shown for it."""
    recorded = json.loads(attrs["data-value"])
    if isinstance(expected, str) or expected is None or isinstance(expected, bool):
        assert recorded == expected, attrs["data-path"]
        assert text == ("n/a" if expected is None else str(expected)), attrs["data-path"]
        return
    assert recorded == expected, attrs["data-path"]
    if isinstance(expected, int):
        assert text == str(expected), attrs["data-path"]
    elif "e" in text:
        assert float(text) == pytest.approx(expected, rel=0.06), attrs["data-path"]
    else:
        decimals = len(text.split(".")[1]) if "." in text else 0
        assert abs(float(text) - expected) <= 0.5 * 10 ** -decimals + 1e-12, (attrs["data-path"], text, expected)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = report.render_report(BEFORE, tmp_path_factory.mktemp("single") / "report.html")
    return out, parse(out)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = report.render_comparison(BEFORE, AFTER, tmp_path_factory.mktemp("compare") / "comparison.html")
    return out, parse(out)


def test_single_loads_nothing_external(single):
    path, page = single
    text = path.read_text(encoding="utf-8")
    assert "http://" not in text
    assert "https://" not in text
    assert "<script" not in text
    assert "@import" not in text
    assert not re.search(r"url\((?!#)", text), "only url(#id) references to inline gradients are allowed"
    for tag, attrs in page.tags:
        for name in ("src", "srcset", "xlink:href"):
            assert name not in attrs, f"<{tag} {name}=...> loads a resource"
        if tag == "link":
            pytest.fail(f"<link> element loads a resource: {attrs}")
        if tag == "a":
            assert attrs.get("href", "#").startswith("#"), attrs


def test_single_numbers_match_summary(single):
    _, page = single
    summary = load_summary(BEFORE)
    assert len(page.values) > 500
    for attrs, text in page.values:
        check_value(attrs, text, lookup(summary, json.loads(attrs["data-path"])))


def test_single_shows_key_numbers(single):
    _, page = single
    summary = load_summary(BEFORE)
    shown = {tuple(json.loads(attrs["data-path"])) for attrs, _ in page.values}
    for question, fairness in summary["questions"].items():
        target = fairness["target_option"]
        for level_name in ["intersectional", *fairness["axes"]]:
            level = fairness["levels"][level_name]
            base = ("questions", question, "levels", level_name)
            for key in ["value", "ci_low", "ci_high", "group_high", "group_low"]:
                assert base + ("metrics", f"p/{target}/max_gap/{key}") in shown
            for group in level["groups"]:
                for key in [f"p/{target}/mean", f"p/{target}/mean/ci_low", f"p/{target}/mean/ci_high", "accuracy"]:
                    assert base + ("by_group", group, key) in shown
            for i in range(len(level["pairwise"])):
                assert base + ("pairwise", i, "wilcoxon/p_holm") in shown
                assert base + ("pairwise", i, "paired_t/p_holm") in shown
        base = ("questions", question, "levels", "intersectional")
        for key in ["friedman/p_value", "flip_rate", "gap/mean", "gap/q90"]:
            assert base + ("metrics", key) in shown
        for term in fairness["levels"]["intersectional"]["discrimination"]["terms"]:
            assert base + ("discrimination", "terms", term, "coefficient") in shown
    for key in ["model_sha256", "model", "task", "seed", "medfair_version", "torch_version", "n_prompts"]:
        assert ("settings", key) in shown
    assert ("settings", "data_files", 0, "sha256") in shown
    assert ("coverage", "mean") in shown
    decision = ("questions", "decision", "levels", "intersectional", "metrics")
    assert decision + ("accuracy/max_gap/value",) in shown


def test_single_headline_text(single):
    path, _ = single
    text = path.read_text(encoding="utf-8")
    metrics = load_summary(BEFORE)["questions"]["decision"]["levels"]["intersectional"]["metrics"]
    headline = text[text.index('id="headline"'):text.index('id="q-decision"')]
    assert f">{metrics['p/Yes/max_gap/value']:.3f}<" in headline
    assert f">{metrics['p/Yes/max_gap/ci_low']:.3f}<" in headline
    assert f">{metrics['p/Yes/max_gap/ci_high']:.3f}<" in headline
    assert f">{fmt_p(metrics['friedman/p_value'])}<" in headline
    assert ">Black x woman<" in headline
    for word in ["debias", "remove bias", "unbiased"]:
        assert word not in text.lower()


def test_single_heatmap_titles_match_results(single):
    path, _ = single
    html = path.read_text(encoding="utf-8")
    rows = load_rows(BEFORE)
    section = html[html.index('id="q-decision-heatmap"'):]
    section = section[:section.index("</svg>")]
    titles = re.findall(r'<rect class="cell" [^>]*><title>([^<]+): ([0-9.]+)</title>', section)
    assert len(titles) == 20 * 8
    for label, value in titles:
        vignette, group = label.split(", ")
        race, gender = group.split(" x ")
        match = [r for r in rows if r["question"] == "decision" and r["vignette_id"] == vignette
                 and r["attributes"] == {"race": race, "gender": gender}]
        assert len(match) == 1
        assert float(value) == pytest.approx(match[0]["probabilities"][0], abs=5e-4 + 1e-9)


def test_single_charts_have_marks(single):
    path, page = single
    svgs = [attrs for tag, attrs in page.tags if tag == "svg"]
    # Per question: intersectional bars, heatmap, gap bars, accuracy bars (decision only), one per axis.
    assert len(svgs) == (1 + 1 + 1 + 1 + 2) + (1 + 1 + 1 + 2)
    html = path.read_text(encoding="utf-8")
    for attrs in svgs:
        assert attrs.get("role") == "img"
        block = html[html.index(f'id="{attrs["id"]}"'):]
        block = block[:block.index("</svg>")]
        assert f'<title id="{attrs["id"]}-title">' in block
        assert "<rect" in block or "<circle" in block


def test_comparison_numbers_match_runs(comparison):
    _, page = comparison
    before, after = load_summary(BEFORE), load_summary(AFTER)
    seen = {"before": 0, "after": 0, "change": 0, "paired": 0}
    changes = {}
    for question in before["questions"]:
        old = before["questions"][question]["levels"]["intersectional"]["vignette_gaps"]
        new = after["questions"][question]["levels"]["intersectional"]["vignette_gaps"]
        changes[question] = medfair.stats.compare_vignette_gaps(old, new)
    for attrs, text in page.values:
        run = attrs.get("data-run")
        path = json.loads(attrs["data-path"])
        if run == "before":
            check_value(attrs, text, lookup(before, path))
        elif run == "after":
            check_value(attrs, text, lookup(after, path))
        elif run == "change":
            old, new = lookup(before, path), lookup(after, path)
            expected = None if old is None or new is None else new - old
            check_value(attrs, text, expected)
        elif run == "paired":
            assert path[0] == "comparison"
            check_value(attrs, text, lookup(changes[path[1]], path[2:]))
        seen[run] += 1
    assert all(count > 0 for count in seen.values()), seen


def test_comparison_paired_test_matches_scipy(comparison):
    _, page = comparison
    before, after = load_summary(BEFORE), load_summary(AFTER)
    old = before["questions"]["decision"]["levels"]["intersectional"]["vignette_gaps"]
    new = after["questions"]["decision"]["levels"]["intersectional"]["vignette_gaps"]
    ids = sorted(old)
    wilcoxon = stats.wilcoxon([new[v] for v in ids], [old[v] for v in ids])
    paired_t = stats.ttest_rel([new[v] for v in ids], [old[v] for v in ids])
    shown = {tuple(json.loads(a["data-path"])): json.loads(a["data-value"]) for a, _ in page.values
             if a.get("data-run") == "paired"}
    assert shown["comparison", "decision", "wilcoxon", "p_value"] == pytest.approx(wilcoxon.pvalue, rel=1e-9)
    assert shown["comparison", "decision", "paired_t", "p_value"] == pytest.approx(paired_t.pvalue, rel=1e-9)
    assert shown["comparison", "decision", "n_vignettes"] == 20


def test_comparison_loads_nothing_external(comparison):
    path, _ = comparison
    text = path.read_text(encoding="utf-8")
    assert "http://" not in text
    assert "https://" not in text
    assert "<script" not in text


def copy_run(source: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    shutil.copytree(source, target)
    return target


def test_cli_writes_default_report(tmp_path, capsys):
    run = copy_run(BEFORE, tmp_path / "run")
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").is_file()
    assert capsys.readouterr().out.strip() == str(run / "report.html")


def test_cli_writes_comparison(tmp_path):
    after = copy_run(AFTER, tmp_path / "after")
    assert main(["report", str(BEFORE), str(after)]) == 0
    assert (after / "comparison.html").is_file()
    out = tmp_path / "custom" / "c.html"
    assert main(["report", str(BEFORE), str(after), "--out", str(out)]) == 0
    assert "Paired test of the per-vignette gap change" in out.read_text(encoding="utf-8")


def test_cli_missing_summary_exits_2(tmp_path, capsys):
    run = tmp_path / "empty"
    run.mkdir()
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert "medfair report: error:" in err
    assert f"{run / 'summary.json'}: file not found" in err


def broken_run(tmp_path: pathlib.Path, edit_summary=None, results_text=None) -> pathlib.Path:
    run = copy_run(BEFORE, tmp_path / "broken")
    if edit_summary is not None:
        summary = load_summary(run)
        edit_summary(summary)
        (run / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    if results_text is not None:
        (run / "results.jsonl").write_text(results_text, encoding="utf-8")
    return run


def test_error_missing_folder(tmp_path):
    with pytest.raises(medfair.IOError, match="run folder not found"):
        report.render_report(tmp_path / "nowhere")


def test_error_summary_invalid_json(tmp_path):
    run = copy_run(BEFORE, tmp_path / "run")
    (run / "summary.json").write_text('{"schema_version": 1,', encoding="utf-8")
    with pytest.raises(medfair.FormatError, match=r"summary\.json: invalid JSON at line 1 column 22"):
        report.render_report(run)


def test_error_summary_schema_version(tmp_path):
    run = broken_run(tmp_path, edit_summary=lambda s: s.update(schema_version=2))
    with pytest.raises(medfair.DataError, match="schema_version is 2, but this medfair reads version 1"):
        report.render_report(run)


def test_error_summary_missing_key(tmp_path):
    def drop(summary):
        del summary["questions"]["decision"]["levels"]["race"]["pairwise"]

    run = broken_run(tmp_path, edit_summary=drop)
    with pytest.raises(medfair.DataError, match="missing key 'questions.decision.levels.race.pairwise'"):
        report.render_report(run)


def test_error_summary_missing_metric(tmp_path):
    def drop(summary):
        del summary["questions"]["dose"]["levels"]["intersectional"]["metrics"]["flip_rate"]

    run = broken_run(tmp_path, edit_summary=drop)
    with pytest.raises(medfair.DataError, match=r"summary\.json: missing or invalid value \(KeyError: 'flip_rate'\)"):
        report.render_report(run)


def test_error_summary_wrong_type(tmp_path):
    run = broken_run(tmp_path, edit_summary=lambda s: s.update(settings=[]))
    with pytest.raises(medfair.DataError, match="key 'settings' should be dict but is list"):
        report.render_report(run)


def test_error_summary_no_questions(tmp_path):
    run = broken_run(tmp_path, edit_summary=lambda s: s.update(questions={}))
    with pytest.raises(medfair.DataError, match="'questions' is empty"):
        report.render_report(run)


def test_error_results_missing(tmp_path):
    run = copy_run(BEFORE, tmp_path / "run")
    (run / "results.jsonl").unlink()
    with pytest.raises(medfair.IOError, match=r"results\.jsonl: file not found"):
        report.render_report(run)


def test_error_results_invalid_line(tmp_path):
    lines = (BEFORE / "results.jsonl").read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2][:40]
    run = broken_run(tmp_path, results_text="\n".join(lines) + "\n")
    with pytest.raises(medfair.FormatError, match=r"results\.jsonl:3: invalid JSON"):
        report.render_report(run)


def test_error_results_probability_count(tmp_path):
    lines = (BEFORE / "results.jsonl").read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[4])
    row["probabilities"] = [1.0]
    lines[4] = json.dumps(row)
    run = broken_run(tmp_path, results_text="\n".join(lines) + "\n")
    with pytest.raises(medfair.DataError, match=r"results\.jsonl:5: 1 probabilities for 2 options"):
        report.render_report(run)


def test_error_results_probability_range(tmp_path):
    lines = (BEFORE / "results.jsonl").read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[0])
    row["probabilities"] = [1.5, -0.5]
    lines[0] = json.dumps(row)
    run = broken_run(tmp_path, results_text="\n".join(lines) + "\n")
    with pytest.raises(medfair.DataError, match=r"results\.jsonl:1: probability 1.5 is not a number in \[0, 1\]"):
        report.render_report(run)


def test_error_results_missing_question(tmp_path):
    rows = [line for line in (BEFORE / "results.jsonl").read_text(encoding="utf-8").splitlines()
            if json.loads(line)["question"] != "dose"]
    run = broken_run(tmp_path, results_text="\n".join(rows) + "\n")
    with pytest.raises(medfair.DataError, match="no rows for question 'dose'.*different runs"):
        report.render_report(run)


def test_error_results_missing_attribute(tmp_path):
    lines = (BEFORE / "results.jsonl").read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[7])
    del row["attributes"]["gender"]
    lines[7] = json.dumps(row)
    run = broken_run(tmp_path, results_text="\n".join(lines) + "\n")
    with pytest.raises(medfair.DataError, match="has no attribute 'gender'"):
        report.render_report(run)


def test_error_comparison_disjoint_vignettes(tmp_path):
    def rename(summary):
        for fairness in summary["questions"].values():
            gaps = fairness["levels"]["intersectional"]["vignette_gaps"]
            fairness["levels"]["intersectional"]["vignette_gaps"] = {f"other-{v}": g for v, g in gaps.items()}

    run = broken_run(tmp_path, edit_summary=rename)
    with pytest.raises(medfair.DataError, match="question 'decision'.*no vignette id is in both runs"):
        report.render_comparison(BEFORE, run, tmp_path / "c.html")


def test_nan_free_fixture_values():
    # The fixtures' dose question has no reference answers, so its accuracy is null, not NaN.
    summary = load_summary(BEFORE)
    assert summary["questions"]["dose"]["levels"]["intersectional"]["overall"]["accuracy"] is None
    assert not math.isnan(summary["questions"]["decision"]["levels"]["intersectional"]["overall"]["accuracy"])
