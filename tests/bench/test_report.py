"""The report: the HTML parses, embeds every plot as a decodable PNG, and holds the numbers it was made from."""

import base64
import io
import json
from html.parser import HTMLParser

import pytest
from PIL import Image

from augbal.bench import RunRecord, aggregate, write_report


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.text, self.stack = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag not in ("img", "meta", "br"):
            self.stack.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-3:])
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _records(tmp_path, classes=("deer", "dog", "cat"), counts=(4500, 450, 45)):
    out = []
    table = {"ce": [0.34, 0.36, 0.35], "wce:inverse": [0.56, 0.58, 0.60], "logit-adjust": [0.70, 0.71, 0.73]}
    for strategy, values in table.items():
        for seed, v in enumerate(values):
            k = len(classes)
            out.append({
                "strategy": strategy, "split": "seedlike-3", "seed": seed, "classes": list(classes), "train_counts": list(counts),
                "scores": {"balanced_accuracy": v, "macro_f1": v - 0.02, "recall": [0.9] * (k - 1) + [v / 3], "ece": 0.05 + seed / 100,
                           "confusion": [[90 if i == j else 5 for j in range(k)] for i in range(k)],
                           "reliability": {"confidence": [0.3, 0.6, 0.9], "accuracy": [0.25, 0.55, 0.8], "count": [10, 20, 70]}},
                "val_loss": [1.0, 0.8, 0.9, 0.7], "volatility": 0.14 if strategy == "wce:inverse" else 0.04,
                "noise_floor": 0.05, "wall_s": 12.5, "images_per_s": 400.0,
            })
    out.append({"strategy": "focal", "split": "seedlike-3", "seed": 0, "error": "RuntimeError: out of memory"})
    path = tmp_path / "results.json"
    path.write_text(json.dumps(out))
    return json.loads(path.read_text())


def test_html_parses_embeds_every_plot_and_holds_the_json_numbers(tmp_path):
    runs = _records(tmp_path)
    rep = write_report(runs, tmp_path / "report", title="seedlike-3", command="augbal bench --recipe recipes/seedlike-3.yaml")
    page = _Page()
    page.feed(rep.html.read_text())
    page.close()
    assert page.stack == []
    srcs = [img["src"] for img in page.images]
    assert len(srcs) == len(rep.plots) == 4
    for src in srcs:
        assert src.startswith("data:image/png;base64,")  # self-contained: no file or network reference
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            assert im.format == "PNG" and im.size[0] > 200
    assert "http" not in rep.html.read_text().replace("http-equiv", "")
    text = " ".join(page.text)
    cells = aggregate([RunRecord.from_dict(r) for r in runs])
    for (split, strategy), metrics in cells.items():
        assert strategy in text
        assert metrics["balanced_accuracy"].text() in text
        assert metrics["macro_f1"].text() in text
    assert "0.713 ± 0.015" in text  # logit-adjust's balanced accuracy over its three seeds
    assert "RuntimeError: out of memory" in text  # a failed run is listed, not hidden
    assert "chosen on the validation split only" in text and "augbal bench --recipe recipes/seedlike-3.yaml" in text
    assert rep.recommendations["seedlike-3"].startswith("On seedlike-3, logit-adjust beats wce:inverse by 13.3 points")
    assert "3.5x calmer" in rep.recommendations["seedlike-3"]
    assert rep.recommendations["seedlike-3"] in text


def test_markdown_mirrors_the_html(tmp_path):
    rep = write_report(_records(tmp_path), tmp_path / "r")
    md = rep.markdown.read_text()
    assert md.startswith("# augbal benchmark")
    assert "| logit-adjust | 3 | 0.713 ± 0.015 |" in md
    for plot in rep.plots:
        assert f"](plots/{plot.name})" in md and plot.exists()


def test_ten_class_splits_get_many_medium_few_shot_recall(tmp_path):
    classes = [f"c{i}" for i in range(10)]
    counts = [int(5000 * 100 ** (-i / 9)) for i in range(10)]
    rep = write_report(_records(tmp_path, classes=classes, counts=counts), tmp_path / "r10")
    assert "Many/medium/few-shot recall" in rep.markdown.read_text()


def test_same_runs_give_the_same_report_bytes(tmp_path):
    runs = _records(tmp_path)
    a = write_report(runs, tmp_path / "a")
    b = write_report(runs, tmp_path / "b")
    assert a.html.read_bytes() == b.html.read_bytes()
    assert a.markdown.read_bytes() == b.markdown.read_bytes()


def test_the_report_states_the_versions_of_the_libraries_that_made_the_runs(tmp_path):
    from importlib.metadata import version

    md = write_report(_records(tmp_path), tmp_path / "r").markdown.read_text()
    line = next(x for x in md.splitlines() if x.startswith("- Versions: "))
    for name in ("augbal", "torch", "torchvision", "numpy", "python"):
        assert f"{name} " in line
    assert f"torch {version('torch')}" in line
