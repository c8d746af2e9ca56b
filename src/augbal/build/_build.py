"""``build_dataset``: scan, split, plan, then write a balanced, augmented copy of an image folder."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from augbal._atomic import atomic_write
from augbal._validation import check_choice, check_int, check_seed

from ._execute import prestart_workers, run_local
from ._plan import SPLITS, Item, Plan, make_plan, plan_rows
from ._ray import RayNotInstalledError, import_ray, run_ray
from ._shard import SHARD_FILE, shard_positions
from ._webdataset import DEFAULT_SHARD_SIZE, drop_loose, pack, shard_layout

STATE_FILE = ".augbal-build.json"
FORMATS: tuple[str, ...] = ("files", "webdataset")
_SKEW_KEYS: tuple[str, ...] = ("ratio", "profile", "n_max", "mu", "order", "counts", "prior", "size")
MANIFEST_COLUMNS = ("path", "label", "split", "group", "source_path", "source_hash", "policy", "repeat", "seed")
EXECUTORS = ("local", "ray")


_OPTION = re.compile(r"\[\[([a-z_]+)(!|=[^\]]*)?\]\]")


def worded(template: str, *values: Any) -> tuple[str, str]:
    """A message for Python callers and the same for the command line: ``[[name]]`` reads ``name``
    or ``--name``, ``[[name!]]`` ``name=True`` or ``--name``, ``[[name=v]]`` ``name='v'`` or
    ``--name v``; then ``{}`` takes ``values`` (paths, which are never read as options).

    Example:
        >>> worded("OUT must be empty ([[overwrite!]] replaces it); got {}", "out/")
        ('OUT must be empty (overwrite=True replaces it); got out/', 'OUT must be empty (--overwrite replaces it); got out/')
    """

    def say(cli: bool) -> str:
        def one(m: re.Match[str]) -> str:
            name, tail = m.group(1), m.group(2) or ""
            flag = "--" + name.replace("_", "-")
            if tail == "!":
                return flag if cli else f"{name}=True"
            if tail.startswith("="):
                return f"{flag} {tail[1:]}" if cli else f"{name}={tail[1:]!r}"
            return flag if cli else name

        return _OPTION.sub(one, template).format(*values)

    return say(False), say(True)


class _Worded(ValueError):
    """An error whose message names options: ``str()`` as Python keywords, ``cli`` as flags."""

    def __init__(self, message: str | tuple[str, str]) -> None:
        python, cli = (message, message) if isinstance(message, str) else message
        super().__init__(python)
        self.cli = cli


class OutputPathError(_Worded):
    """The output folder cannot be used: inside the source, holding the source, or not empty.

    ``cli`` is the message with the options named as flags (``--overwrite``)."""


class ResumeRefusedError(OutputPathError):
    """``resume`` found an ``OUT.incomplete`` started with another configuration (``setting`` names it)."""

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


class BuildOptionError(_Worded):
    """An option the data cannot use (``option`` names it: ``"target"``, ``"policy"``, ``"split"``);
    ``cli`` is the message with options named as flags."""

    def __init__(self, option: str, message: str | tuple[str, str]) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class BuildSummary:
    """What a build did (or, with ``dry_run``, would do).

    Attributes:
        out: the output folder.
        rows: per class and split: ``before``, ``after``, ``max_reuse``, ``augmented``.
        short: ``{class: (target, reached)}`` for classes ``max_multiplier`` kept below target.
        problems: files the scan did not keep, as ``{"path", "kind", "reason"}`` dicts.
        config: the configuration that fixes the output; ``config_hash`` its sha256.
        dry_run: nothing was written.
        warnings: what the scan warned about (classes with 1 or 2 images, ...).
        counts: ``{"before" | "after": {split: {class: images}}}``.
        dropped: training originals ``undersample`` left out, as ``{"path", "label", "source_hash"}``.
        resumed: augmented copies an interrupted build had already written and this one kept.
        shard: for one shard of a build, ``{"index": i, "count": K, "files": n}`` (its files);
            rows, counts and the configuration still describe the whole build.
        merged: the number of shards ``merge_shards`` joined into this dataset (0: built whole).
        skewed_out: ``{class: training originals}`` that ``skew`` left out (not copied).
        tar_shards: with ``format="webdataset"``, the tar files written (names under ``out``); for a
            shard, those ``merge_shards`` writes.
    """

    out: Path
    rows: list[dict[str, Any]]
    short: dict[str, tuple[int, int]]
    problems: list[dict[str, str]]
    config: dict[str, Any]
    config_hash: str
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    dropped: list[dict[str, str]] = field(default_factory=list)
    resumed: int = 0
    shard: dict[str, int] | None = None
    merged: int = 0
    skewed_out: dict[str, int] = field(default_factory=dict)
    tar_shards: list[str] = field(default_factory=list)

    @property
    def written(self) -> int:
        """Files in the dataset (originals and augmented copies, all splits); for a shard, its files."""
        if self.shard is not None:
            return int(self.shard["files"])
        return sum(r["after"] for r in self.rows)


def check_output(source: Path, out: Path, *, overwrite: bool, resume: bool = False) -> None:
    """Refuse an ``out`` inside ``source``, a ``source`` inside ``out``, or a non-empty ``out``.

    A leftover ``out.incomplete`` is refused too unless ``overwrite`` (discard it) or
    ``resume`` (continue it; its configuration is checked later).

    Raises:
        OutputPathError: naming both paths, or the folder and ``overwrite``.
    """
    src, dst = Path(os.path.realpath(source)), Path(os.path.realpath(out))
    if dst == src or src in dst.parents:
        raise OutputPathError(f"OUT must not be inside SOURCE; got OUT {out} inside SOURCE {source}")
    if dst in src.parents:
        raise OutputPathError(f"SOURCE must not be inside OUT; got SOURCE {source} inside OUT {out}")
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"OUT must be a folder; got a file {out}")
    above = out.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise OutputPathError(f"OUT must be a folder path; got {out} under the file {above}")
    partial = _incomplete(out)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        if resume and not partial.exists() and (out / "summary.json").is_file():
            raise OutputPathError(worded("[[resume!]] needs an interrupted build; got {}, a finished build "
                                         "(nothing to resume; [[overwrite!]] rebuilds it)", out))
        raise OutputPathError(worded("OUT must be empty or missing ([[overwrite!]] replaces it); got non-empty {}", out))
    if partial.exists() and not overwrite and not resume:
        raise OutputPathError(worded("an interrupted build left {}; [[resume!]] continues it, [[overwrite!]] "
                                     "discards it; got {} present", partial, partial))


def _check_sources_outside(out: Path, paths: Iterable[str]) -> None:
    """Refuse an ``out`` that holds any of ``paths`` (the images a manifest lists, or their folders).

    ``check_output`` compares SOURCE itself with OUT; a manifest's images may live anywhere,
    and replacing an OUT that holds them (``overwrite``) would delete them.

    Raises:
        OutputPathError: naming the first such image and how many there are.

    Example:
        >>> _check_sources_outside(Path("/data/out"), ["/data/cat/1.jpg"])  # fine: not inside OUT
        >>> _check_sources_outside(Path("/data"), ["/data/cat/1.jpg"])
        Traceback (most recent call last):
        ...
        augbal.build._build.OutputPathError: OUT must not hold SOURCE's images; got /data/cat/1.jpg inside OUT /data (1 image)
    """
    dst = os.path.realpath(out)
    inside = [p for folder, members in _by_folder(paths).items()
              if os.path.commonpath([dst, os.path.realpath(folder)]) == dst for p in members]
    if inside:
        raise OutputPathError(f"OUT must not hold SOURCE's images; got {inside[0]} inside OUT {out} "
                              f"({len(inside)} image{'s' if len(inside) > 1 else ''})")


def _by_folder(paths: Iterable[str]) -> dict[str, list[str]]:
    folders: dict[str, list[str]] = {}
    for p in paths:
        folders.setdefault(os.path.dirname(os.path.abspath(p)), []).append(p)
    return folders


def _incomplete(out: Path) -> Path:
    return out.with_name(out.name + ".incomplete")


def _parse_target(target: Any) -> Any:
    """A ``sampling_strategy`` from a CLI string: a name, a JSON dict, or a float."""
    if not isinstance(target, str):
        return target
    text = target.strip()
    if text.startswith("{"):
        return json.loads(text)
    try:
        return float(text)
    except ValueError:
        return text


def _parse_skew(skew: Any) -> dict[str, Any] | None:
    """``skew`` keyword arguments from a dict, its JSON, or ``key=value,...`` (``ratio=100,profile=step``).

    With ``ratio`` and no ``order``, the classes are ordered by size (``order="count"``): the
    largest class is the head, as a long tail is read (``augbal.data.skew`` itself defaults to
    the index's class order, which for a folder is alphabetical).

    Example:
        >>> _parse_skew("ratio=100"), _parse_skew("ratio=10,profile=step,mu=0.3,order=given")
        ({'ratio': 100, 'order': 'count'}, {'ratio': 10, 'profile': 'step', 'mu': 0.3, 'order': 'given'})
    """
    if skew is None:
        return None
    if isinstance(skew, str):
        text = skew.strip()
        if text.startswith("{"):
            try:
                skew = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"skew must be key=value pairs or a JSON dict; got {skew!r} ({exc.msg})") from None
        else:
            pairs = {}
            for part in filter(None, (p.strip() for p in text.split(","))):
                key, sep, value = part.partition("=")
                if not sep or not key.strip():
                    raise ValueError(f"skew must be key=value pairs such as ratio=100,profile=exp; got {skew!r}")
                if key.strip() in pairs:
                    raise ValueError(f"skew must give each key once; got {key.strip()} twice in {skew!r}")
                pairs[key.strip()] = _scalar(value.strip())
            skew = pairs
    if not isinstance(skew, Mapping) or not skew:
        raise ValueError(f"skew must be a non-empty dict of augbal.data.skew arguments; got {skew!r}")
    unknown = sorted(set(skew) - set(_SKEW_KEYS))
    if unknown:
        raise ValueError(f"skew keys must be among {', '.join(_SKEW_KEYS)}; got {', '.join(map(str, unknown))}")
    params = {str(k): v for k, v in skew.items()}
    if "ratio" in params and "order" not in params:
        params["order"] = "count"
    return params


def _scalar(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _skew_train(index: Any, train: np.ndarray, params: Mapping[str, Any], *, seed: int) -> np.ndarray:
    """The training positions ``augbal.data.skew(train side, **params, seed=seed)`` keeps."""
    from augbal.data import skew

    kept = skew(index.subset(train), **params, seed=seed)
    wanted = set(kept.paths.tolist())
    return np.array([int(i) for i in train if str(index.paths[i]) in wanted], dtype=np.int64)


def _scan_existing(source: Path) -> tuple[Any, dict[str, np.ndarray], dict[str, str], list[str]]:
    """``--splits existing``: scan ``source/train`` (and ``val``, ``test`` where present) into one index.

    Returns the index, its positions per split, each split's folder and warnings (files of
    val/test byte-identical to training files). Classes must agree between the splits.
    """
    from augbal.data import ImageIndex, find_duplicates, scan

    parts: dict[str, Any] = {}
    for name in SPLITS:
        folder = source / name
        if folder.is_dir():
            parts[name] = scan(folder, allow_empty=name != "train")
        elif name == "train":
            raise BuildOptionError("split", f"--splits existing needs a SOURCE/train folder (and optionally val, "
                                   f"test); got no folder {folder}")
    classes = parts["train"].classes
    for name, part in parts.items():
        if part.classes != classes:
            missing = [c for c in classes if c not in part.classes]
            extra = [c for c in part.classes if c not in classes]
            said = "; ".join(x for x in (f"lacks {', '.join(missing)}" if missing else "",
                                         f"has extra {', '.join(extra)}" if extra else "") if x)
            raise BuildOptionError("split", f"--splits existing needs the same class folders in every split; "
                                   f"{name} ({source / name}) {said or 'orders them differently'} (train has "
                                   f"{', '.join(classes)})")
    names = list(parts)
    columns = {k: np.concatenate([getattr(parts[n], k) for n in names]) for k in
               ("paths", "labels", "nbytes", "hashes", "widths", "heights", "modes")}
    index = ImageIndex.from_arrays(
        columns["paths"].tolist(), columns["labels"], classes, nbytes=columns["nbytes"], hashes=columns["hashes"],
        widths=columns["widths"], heights=columns["heights"], modes=columns["modes"], root=str(source),
        problems=sorted((p for n in names for p in parts[n].problems), key=lambda p: (p.path, p.kind)),
    )
    groups = find_duplicates(index, near=False).groups
    index = replace(index, groups=groups)
    sides, start = {}, 0
    for name in SPLITS:
        n = len(parts[name]) if name in parts else 0
        sides[name] = np.arange(start, start + n, dtype=np.int64)
        start += n
    notes = []
    train_groups = set(groups[sides["train"]].tolist()) - {-1}
    leaked = sum(int(g in train_groups) for s in ("val", "test") for g in groups[sides[s]].tolist())
    if leaked:
        notes.append(f"{leaked} val/test images of {source} are byte-identical to training images (kept where "
                     f"SOURCE put them; the manifest's group column marks them)")
    return index, sides, {n: str(source / n) for n in parts}, notes


def _policy_spec(policy: Any, *, seed: int, counts: list[int], classes: tuple[str, ...],
                 size: int | None) -> tuple[dict[str, Any], int | None]:
    """The spec of the policy as a build applies it, and the output size.

    The spec carries the build seed (and, for ``rarity_scaled``, the training counts) and
    ``size``: ``size``, else a ``size`` the given spec holds, else None (each source's
    shorter side). ``mean`` and ``std`` are left out: they normalise tensors at training
    time, and a build writes uint8 pixels.

    Raises:
        BuildOptionError: the spec's ``size`` and ``size`` differ.
    """
    from augbal.augment import Policy, build_policy

    if isinstance(policy, str) and policy.strip().startswith("{"):
        policy = json.loads(policy)
    if isinstance(policy, Policy):
        policy = policy.to_dict()
    spec = {"name": policy} if isinstance(policy, str) else dict(policy)
    if spec.get("name") == "rarity_scaled" and spec.get("counts") is None:
        spec.update(counts=counts, classes=list(classes))
    spec["seed"] = seed
    given = spec.pop("size", None)
    if given is not None:
        check_int("policy size", given, low=1)
        if size is not None and int(given) != size:
            raise BuildOptionError("policy", worded("the policy's size {} and [[size]] {} differ; give one of them",
                                                    given, size))
        size = int(given)
    built = build_policy(spec).to_dict()
    for key in ("mean", "std"):
        built.pop(key, None)
    built["size"] = size
    return built, size


_FLAGS = {"source": "SOURCE", "max_multiplier": "--max-multiplier"}


def _setting_text(key: str, value: Any) -> str:
    """``--seed 0``: a configuration value as the command-line flag that sets it."""
    flag = _FLAGS.get(key, "--" + key.replace("_", "-"))
    if isinstance(value, bool):
        return flag if value else f"no {flag}"
    if value is None:
        return f"no {flag}"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return f"{flag} {text}"


def _check_resumable(staging: Path, config: Mapping[str, Any], config_hash: str,
                     shard: Mapping[str, int] | None = None) -> None:
    """Refuse to continue ``staging`` unless it was started with this configuration and shard (names the setting)."""
    # a build stopped between removing its state file and the rename has written summary.json
    name = STATE_FILE if (staging / STATE_FILE).exists() else "summary.json"
    try:
        state = json.loads((staging / name).read_text(encoding="utf-8"))
        started, started_hash = state["config"], state["config_hash"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ResumeRefusedError(
            f"--resume refused: {staging} has no readable {STATE_FILE} (not started by this version of "
            f"build-dataset); --overwrite discards it", "state") from None
    if started_hash == config_hash and started == dict(config):
        started_shard = state.get("shard")
        ours = None if shard is None else {"index": shard["index"], "count": shard["count"]}
        theirs = None if not isinstance(started_shard, dict) else {k: started_shard.get(k) for k in ("index", "count")}
        if theirs == ours:
            return
        for key, flag in (("count", "num_shards"), ("index", "shard_index")):
            was, now = (theirs or {}).get(key), (ours or {}).get(key)
            if was != now:
                raise ResumeRefusedError(
                    f"--resume refused: {staging} was started with {_setting_text(flag, was)}, "
                    f"this run has {_setting_text(flag, now)}", flag)
        return
    # the policy spec carries the seed: a seed change is named as --seed, not as the policy it implies
    for key in sorted(set(started) | set(config), key=lambda k: (k == "policy", k)):
        if started.get(key) != config.get(key):
            raise ResumeRefusedError(
                f"--resume refused: {staging} was started with {_setting_text(key, started.get(key))}, "
                f"this run has {_setting_text(key, config.get(key))}", key)
    raise ResumeRefusedError(f"--resume refused: {staging} has configuration hash {started_hash}, "
                             f"this run has {config_hash}", "config_hash")


def undersample_train(index: Any, train: np.ndarray, keep: Mapping[int, int], *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep ``keep[c]`` training originals of each class ``c``: ``(kept, dropped)`` positions.

    Which originals stay is fixed by a seeded order on ``(seed, content hash)`` (path breaks
    ties), not by the listing, so adding another file moves at most the cut-off.

    Example:
        >>> import numpy as np
        >>> from types import SimpleNamespace
        >>> ix = SimpleNamespace(labels=np.array([0, 0, 0, 1]), hashes=np.array(["a", "b", "c", "d"]),
        ...                      paths=np.array(["0", "1", "2", "3"]))
        >>> kept, dropped = undersample_train(ix, np.arange(4), {0: 1, 1: 1}, seed=0)
        >>> kept.tolist(), dropped.tolist()
        ([0, 3], [1, 2])
    """
    labels, hashes, paths = index.labels, index.hashes, index.paths
    kept: list[int] = []
    dropped: list[int] = []
    for c in sorted({int(labels[i]) for i in train}):
        members = [int(i) for i in train if int(labels[i]) == c]
        order = sorted(members, key=lambda i: (hashlib.sha256(f"{seed}:{hashes[i]}".encode()).hexdigest(),
                                               str(paths[i])))
        n = min(int(keep.get(c, len(members))), len(members))
        kept.extend(order[:n])
        dropped.extend(order[n:])
    return np.array(sorted(kept), dtype=np.int64), np.array(sorted(dropped), dtype=np.int64)


def _progress_bar(total: int) -> Any:
    """A rich progress bar on stderr: images done of ``total``, images/s and the time left."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("writing"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} images/s"), TextColumn("ETA"), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    ), total


def _available_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _config_hash(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("augbal", "numpy", "pillow", "albumentations", "torch", "imbalanced-learn"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


def build_dataset(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    target: Any = "auto",
    split: tuple[float, float, float] | str = (0.8, 0.1, 0.1),
    policy: Any = "light",
    size: int | None = None,
    max_multiplier: int | None = None,
    seed: int = 0,
    link: bool = False,
    workers: int | None = None,
    overwrite: bool = False,
    dry_run: bool = False,
    resume: bool = False,
    undersample: Any = None,
    progress: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
    num_shards: int | None = None,
    shard_index: int | None = None,
    skew: Any = None,
    jpeg_quality: int = 95,
    format: str = "files",
    shard_size: int | None = None,
) -> BuildSummary:
    """Build a balanced, augmented copy of the image folder ``source`` in ``out``.

    Scans ``source`` (problem files are reported, not copied), splits it (stratified,
    duplicate-group-aware, seeded ``split`` ratios), brings each training class to its
    ``target`` with augmented copies spread evenly over its originals, and writes
    ``out/<split>/<class>/<file>`` (originals unchanged; copies as ``<stem>.aug<k>.jpg`` for a
    JPEG source, at ``jpeg_quality``, and ``<stem>.aug<k>.png`` for every other source),
    ``manifest.csv`` / ``manifest.jsonl``, ``summary.json`` and ``problems.csv``. It builds
    into ``<out>.incomplete`` and renames that at the end. Val and test are copied untouched.

    An augmented image depends only on (``seed``, its source's content hash, its repeat
    ``k``) and the configuration: not on ``workers``, nor on the other files of ``source``.

    Args:
        source: an image folder ``source/<class>/...`` (or a manifest, as for ``scan``).
        out: the output folder (must be missing or empty unless ``overwrite``).
        target: an imbalanced-learn ``sampling_strategy`` (``"auto"``, ``"not majority"``,
            ``"all"``, ``{class: count}``, a float ratio, or a CLI string of one: JSON for a dict).
        split: ``(train, val, test)`` ratios, or ``"existing"``: keep SOURCE's own ``train/``,
            ``val/`` and ``test/`` folders (val and test optional; their class folders must be
            train's, else ``BuildOptionError`` naming the split).
        policy: a registered policy name, a spec dict (or its JSON), or ``"rarity_scaled"``
            (its counts are the training counts).
        size: side of augmented images (default: each source's shorter side).
        max_multiplier: no original used more than this many times (itself + copies).
        seed: seeds the split, the tie order and every augmentation.
        link: hard-link originals instead of copying them (copied where links fail).
        workers: augmentation processes (default: the CPUs available to this process).
        overwrite: replace a non-empty ``out``.
        dry_run: plan and return the summary without writing anything.
        resume: continue the interrupted build in ``<out>.incomplete`` (refused, naming the
            setting, unless it was started with this configuration); files it wrote are kept.
        undersample: an imbalanced-learn under-sampling ``sampling_strategy`` (``"auto"`` =
            ``"not minority"``, ``"majority"``, ``{class: count}``, a float ratio, ...) applied to
            the training split first; kept originals follow a seeded content-hash order, the
            dropped ones are listed in ``summary.json`` and not copied.
        progress: show a progress bar on stderr while writing (never in a dry run).
        executor: ``"local"`` (``workers`` processes) or ``"ray"`` (Ray tasks, ``num_cpus=1``
            each; ``pip install augbal[ray]``); the same bytes either way.
        ray_address: with ``executor="ray"``, passed to ``ray.init(address=...)``; None:
            ``RAY_ADDRESS`` if set, else a new local Ray with ``workers`` CPUs (all by default).
            OUT must be on a file system every Ray node writes, with augbal installed there.
        num_shards, shard_index: build only shard ``shard_index`` of ``num_shards`` (a fixed
            partition of the plan by source content hash and repeat), as a shard: its part of the
            manifest, the whole build's summary with a ``"shard"`` entry, and ``shard.json``;
            ``merge_shards`` joins the K shard folders. Not part of the configuration hash.
        skew: ``augbal.data.skew`` arguments applied to the training split first (for experiments):
            a dict, its JSON, or ``"ratio=100"`` / ``"ratio=10,profile=step,mu=0.5"``; seeded by ``seed``.
            Left-out originals are not copied; ``before`` counts the skewed split.
        jpeg_quality: quality (1-100) of augmented copies of JPEG sources.
        format: ``"files"`` (the tree above) or ``"webdataset"``: each split as tar shards
            ``out/<split>-NNNNNN.tar`` of ``shard_size`` samples (see ``augbal.build._webdataset``);
            the manifest's ``path`` is then ``<shard>#<key>.<ext>``.
        shard_size: samples per tar file (``format="webdataset"`` only; default 1000). A
            webdataset build in shards (``num_shards``) writes each shard as a files tree (its
            manifest's paths are the files'); ``merge_shards`` packs the joined tree into the tar
            files of the single build, byte for byte.

    Raises:
        OutputPathError: ``out`` inside ``source`` (or the reverse), or not empty.
        ResumeRefusedError: ``resume`` with an ``<out>.incomplete`` of another configuration or shard.
        ValueError: a bad option (the rule, then "got X").
        augbal.data.EmptyClassError: a class folder without a usable image (named).

    Example:
        >>> import tempfile, os
        >>> from augbal.data import demo_dataset
        >>> src = demo_dataset(tempfile.mkdtemp())
        >>> s = build_dataset(src, os.path.join(tempfile.mkdtemp(), "out"), target={"cat": 60}, dry_run=True)
        >>> [(r["class"], r["before"], r["after"]) for r in s.rows if r["split"] == "train"]
        [('cat', 48, 60), ('deer', 480, 480), ('dog', 144, 144)]
    """
    from augbal.data import scan
    from augbal.data import split as split_index
    from augbal.sampling import check_sampling_strategy

    source, out = Path(source), Path(out)
    check_seed("seed", seed)
    check_int("max_multiplier", max_multiplier, low=1, allow_none=True)
    check_int("size", size, low=1, allow_none=True)
    check_int("workers", workers, low=1, allow_none=True)
    check_int("jpeg_quality", jpeg_quality, low=1, high=100)
    check_choice("format", format, FORMATS)
    check_int("shard_size", shard_size, low=1, allow_none=True)
    if shard_size is not None and format != "webdataset":
        raise BuildOptionError("shard_size", worded("[[shard_size]] only applies with [[format=webdataset]]; got "
                                                    f"[[format={format}]]"))
    if format == "webdataset":
        shard_size = shard_size or DEFAULT_SHARD_SIZE
    check_choice("executor", executor, EXECUTORS)
    if ray_address is not None and executor != "ray":
        raise BuildOptionError("ray_address", worded(f"[[ray_address]] needs [[executor=ray]]; got [[executor={executor}]] "
                                                     "with [[ray_address]] {}", ray_address))
    shard = _check_shard(num_shards, shard_index)
    if executor == "ray" and not dry_run:
        try:
            import_ray()
        except RayNotInstalledError as exc:
            raise BuildOptionError("executor", str(exc)) from None
    if not source.exists():
        raise FileNotFoundError(f"SOURCE must be an image folder or a manifest; no such path: {source}")
    if out.is_symlink():  # written through: OUT.incomplete beside the folder it points to, renamed onto it
        out = Path(os.path.realpath(out))
    check_output(source, out, overwrite=overwrite, resume=resume)
    existing = isinstance(split, str) and split.strip() == "existing"
    try:
        ratios = () if existing else tuple(float(r) for r in split)
    except (TypeError, ValueError):
        raise BuildOptionError("split", f"split must be three ratios (train, val, test) or 'existing'; "
                               f"got {split!r}") from None
    try:
        skew_params = _parse_skew(skew)
    except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise BuildOptionError("skew", str(exc)) from None
    try:
        strategy = _parse_target(target)
    except json.JSONDecodeError as exc:
        raise BuildOptionError("target", f"target must be a sampling_strategy name, a float or a JSON dict; "
                               f"got {target!r} ({exc.msg})") from None
    try:
        under = _parse_target(undersample)
    except json.JSONDecodeError as exc:
        raise BuildOptionError("undersample", f"undersample must be a sampling_strategy name, a float or a JSON "
                               f"dict; got {undersample!r} ({exc.msg})") from None

    if not dry_run and executor == "local" and (workers or _available_cpus()) > 1:
        prestart_workers()  # the fork server loads torch and the policies while SOURCE is scanned
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if existing:
            index, sides, roots, notes = _scan_existing(source)
        else:
            index = scan(source)  # an empty class stops the build (EmptyClassError names it)
            roots, notes = None, []
    _check_sources_outside(out, [*index.paths.tolist(), *(p.path for p in index.problems)])
    if not existing:
        try:
            made = split_index(index, ratios=ratios, seed=seed)
        except ValueError as exc:
            raise BuildOptionError("split", str(exc)) from None
        sides = {"train": made.train_indices, "val": made.val_indices, "test": made.test_indices}
    train = sides["train"]
    count = lambda positions: np.bincount(index.labels[positions], minlength=len(index.classes))  # noqa: E731
    _check_classes(index.classes, count(train), "source", "the training split of SOURCE")
    skewed_out: dict[str, int] = {}
    if skew_params is not None:
        try:
            kept = _skew_train(index, train, skew_params, seed=seed)
        except (TypeError, ValueError) as exc:
            raise BuildOptionError("skew", str(exc)) from None
        skewed_out = {c: int(n) for c, n in zip(index.classes, (count(train) - count(kept)).tolist())}
        train = kept
        _check_classes(index.classes, count(train), "skew", "the skewed training split")
    dropped = np.array([], dtype=np.int64)
    if under is not None:
        try:
            keep = check_sampling_strategy(under, count(train).tolist(), kind="under", classes=index.classes)
        except (TypeError, ValueError) as exc:
            raise BuildOptionError("undersample", str(exc)) from None
        train, dropped = undersample_train(index, train, keep, seed=seed)
        _check_classes(index.classes, count(train), "undersample", "the undersampled training split")
    train_counts = count(train)
    try:
        targets = check_sampling_strategy(strategy, train_counts.tolist(), kind="over", classes=index.classes)
    except (TypeError, ValueError) as exc:
        raise BuildOptionError("target", str(exc)) from None
    plan = make_plan(
        index,
        {"train": train, "val": sides["val"], "test": sides["test"]},
        targets,
        seed=seed,
        max_multiplier=max_multiplier,
        jpeg_quality=jpeg_quality,
        roots=roots,
    )
    layout = None
    if format == "webdataset":
        try:
            layout = shard_layout(plan.items, seed=seed, shard_size=int(shard_size or DEFAULT_SHARD_SIZE))
        except ValueError as exc:
            raise BuildOptionError("format", str(exc)) from None
    try:
        spec, size = _policy_spec(policy, seed=seed, counts=train_counts.tolist(), classes=index.classes, size=size)
    except BuildOptionError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise BuildOptionError("policy", str(exc).strip("'\"")) from None
    config = {
        "source": os.path.abspath(source),
        "target": strategy,
        "undersample": under,
        "skew": skew_params,
        "split": "existing" if existing else list(ratios),
        "policy": spec,
        "size": size,
        "max_multiplier": max_multiplier,
        "seed": seed,
        "link": link,
        "format": format,
        "jpeg_quality": jpeg_quality,
        "shard_size": shard_size,
    }
    rows = plan_rows(plan)
    before = {s: dict(plan.before[s]) for s in SPLITS}
    for i in dropped.tolist():  # "before" counts the split as it was, "after" what is written
        before["train"][index.classes[int(index.labels[i])]] += 1
    for r in rows:
        r["before"] = before[r["split"]][r["class"]]
    summary = BuildSummary(
        out=out,
        rows=rows,
        short=plan.short,
        problems=[{"path": p.path, "kind": p.kind, "reason": p.reason} for p in index.problems],
        config=config,
        config_hash=_config_hash(config),
        dry_run=dry_run,
        warnings=[str(w.message) for w in caught] + notes,
        counts={"before": before, "after": plan.after()},
        dropped=[{"path": str(index.paths[i]), "label": index.classes[int(index.labels[i])],
                  "source_hash": str(index.hashes[i])} for i in dropped.tolist()],
        skewed_out=skewed_out,
        tar_shards=sorted({s.shard for s in layout.values()}) if layout else [],
    )
    positions = None
    items: tuple[Item, ...] = plan.items
    if shard is not None:
        positions = shard_positions(plan.items, shard["count"], shard["index"])
        items = tuple(plan.items[p] for p in positions)
        shard = {**shard, "files": len(items)}
        summary = replace(summary, shard=shard)
    if dry_run:
        return summary
    staging = _incomplete(out)
    config_hash = summary.config_hash
    resuming = resume and staging.exists()
    if resuming:
        _check_resumable(staging, config, config_hash, shard)
    else:
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        state = {"config": config, "config_hash": config_hash}
        if shard is not None:
            state["shard"] = {"index": shard["index"], "count": shard["count"]}
        with atomic_write(staging / STATE_FILE, encoding="utf-8") as fh:
            fh.write(json.dumps(state, indent=2, sort_keys=True) + "\n")
    options: dict[str, Any] = dict(spec=spec, size=size, link=link, resume=resuming)
    if executor == "ray":
        def execute(todo: Any, root: str, **kwargs: Any) -> int:
            return run_ray(todo, root, workers=workers, address=ray_address, **kwargs)
    else:
        def execute(todo: Any, root: str, **kwargs: Any) -> int:
            return run_local(todo, root, workers=workers or _available_cpus(), **kwargs)
    if progress:
        bar, total = _progress_bar(len(items))
        with bar:
            task = bar.add_task("writing", total=total, rate="0.0")

            def advance(n: int) -> None:
                bar.advance(task, n)
                speed = bar.tasks[task].speed
                bar.update(task, rate=f"{speed or 0.0:.1f}")

            written = execute(items, str(staging), advance=advance, **options)
    else:
        written = execute(items, str(staging), **options)
    resumed = sum(1 for item in items if item.repeat) - written if resuming else 0
    packed = layout if shard is None else None  # a shard stays a files tree: merge_shards packs the whole build
    if packed is not None:  # pack the loose files into tar files, write the manifests, then drop the files
        pack(str(staging), items, packed, _manifest_records(plan, items, spec_text=_spec_text(spec), seed=seed,
                                                            layout=packed))
    _write_outputs(staging, plan, summary, spec, items=items, positions=positions, layout=packed)
    if packed is not None:
        drop_loose(str(staging))
    (staging / STATE_FILE).unlink(missing_ok=True)
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)
    if resuming:
        return replace(summary, resumed=resumed)
    return summary


def _check_classes(classes: tuple[str, ...], counts: np.ndarray, option: str, what: str) -> None:
    """Refuse training counts a build cannot balance, blaming ``option``: fewer than 2 classes, or a
    class left without an image (nothing to copy).

    Example:
        >>> _check_classes(("cat", "dog"), np.array([3, 0]), "skew", "the skewed training split")
        Traceback (most recent call last):
        ...
        augbal.build._build.BuildOptionError: the skewed training split must keep an image of every class to balance; got 0 of dog (counts cat 3, dog 0)
    """
    shown = ", ".join(f"{c} {int(n)}" for c, n in zip(classes, counts))
    if len(classes) < 2:
        raise BuildOptionError(option, f"{what} must hold at least 2 classes to balance; got {len(classes)} "
                                       f"({shown})")
    empty = [c for c, n in zip(classes, counts) if n == 0]
    if empty:
        raise BuildOptionError(option, f"{what} must keep an image of every class to balance; got 0 of "
                                       f"{', '.join(empty)} (counts {shown})")


def _check_shard(num_shards: Any, shard_index: Any) -> dict[str, int] | None:
    """``{"index", "count"}`` of a shard build, or None for a whole build (both or neither given)."""
    if num_shards is None and shard_index is None:
        return None
    if num_shards is None or shard_index is None:
        missing, given = ("num_shards", "shard_index") if num_shards is None else ("shard_index", "num_shards")
        value = shard_index if num_shards is None else num_shards
        raise BuildOptionError(missing, worded(f"[[{given}]] needs [[{missing}]] too (a shard is one of [[num_shards]]); "
                                               f"got [[{given}]] {{}} without [[{missing}]]", value))
    count = check_int("num_shards", num_shards, low=1)
    try:
        index = check_int("shard_index", shard_index, low=0, high=count - 1)
    except ValueError as exc:
        raise BuildOptionError("shard_index", f"{exc} (num_shards {count})") from None
    return {"index": int(index), "count": int(count)}


def _spec_text(spec: Mapping[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def _manifest_records(plan: Plan, items: Iterable[Item], *, spec_text: str, seed: int,
                      layout: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """One manifest row per item, in the order given (``path`` is ``<tar>#<key>.<ext>`` with a ``layout``)."""
    for item in items:
        yield {
            "path": item.out if layout is None else layout[item.out].path,
            "label": plan.classes[item.label],
            "split": item.split,
            "group": item.group,
            "source_path": item.source,
            "source_hash": item.source_hash,
            "policy": spec_text if item.repeat else "",
            "repeat": item.repeat,
            "seed": seed,
        }


def write_manifests(root: Path, records: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
    """``manifest.csv`` and ``manifest.jsonl`` from ``records()`` (called once per file: rows stream)."""
    with atomic_write(root / "manifest.csv", newline="", encoding="utf-8", errors="surrogateescape") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for r in records():
            writer.writerow([r[c] for c in MANIFEST_COLUMNS])
    with atomic_write(root / "manifest.jsonl", encoding="utf-8", errors="surrogateescape") as fh:
        for r in records():
            fh.write(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n")


def write_summary(root: Path, document: Mapping[str, Any]) -> None:
    """``summary.json``, atomically."""
    with atomic_write(root / "summary.json", encoding="utf-8") as fh:
        fh.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def _summary_from_document(out: Path, document: Mapping[str, Any]) -> BuildSummary:
    """The ``BuildSummary`` a ``summary.json`` document records (as ``merge_shards`` returns it)."""
    return BuildSummary(
        out=out,
        rows=list(document["rows"]),
        short={c: (v["target"], v["reached"]) for c, v in document["short"].items()},
        problems=list(document["problems"]),
        config=dict(document["config"]),
        config_hash=document["config_hash"],
        warnings=list(document["warnings"]),
        counts=dict(document["counts"]),
        dropped=list(document["dropped"]),
        shard=document.get("shard"),
        merged=int((document.get("merged") or {}).get("shards", 0)),
        skewed_out=dict(document.get("skewed_out") or {}),
        tar_shards=list(document.get("tar_shards") or []),
    )


def _write_outputs(root: Path, plan: Plan, summary: BuildSummary, spec: dict[str, Any], *,
                   items: Iterable[Item] | None = None, positions: list[int] | None = None,
                   layout: Mapping[str, Any] | None = None) -> None:
    """manifest.csv, manifest.jsonl, problems.csv and summary.json (and a shard's shard.json), each atomic.

    ``items`` (default: the whole plan) are the rows of the manifest; a shard passes its own
    and their ``positions`` in the plan.
    """
    spec_text = _spec_text(spec)
    seed = summary.config["seed"]
    rows = plan.items if items is None else items
    write_manifests(root, lambda: _manifest_records(plan, rows, spec_text=spec_text, seed=seed, layout=layout))
    with atomic_write(root / "problems.csv", newline="", encoding="utf-8", errors="surrogateescape") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "kind", "reason"])
        for p in summary.problems:
            writer.writerow([p["path"], p["kind"], p["reason"]])
    document = {
        "counts": summary.counts,
        "rows": summary.rows,
        "short": {c: {"target": t, "reached": r} for c, (t, r) in summary.short.items()},
        "problems": summary.problems,
        "dropped": summary.dropped,
        "skewed_out": summary.skewed_out,
        "tar_shards": summary.tar_shards,
        "warnings": summary.warnings,
        "config": summary.config,
        "config_hash": summary.config_hash,
        "versions": _versions(),
        "splits": list(SPLITS),
    }
    if summary.shard is not None:
        document["shard"] = dict(summary.shard)
        order = {"index": summary.shard["index"], "count": summary.shard["count"],
                 "config_hash": summary.config_hash, "positions": positions or []}
        with atomic_write(root / SHARD_FILE, encoding="utf-8") as fh:
            fh.write(json.dumps(order, separators=(",", ":")) + "\n")
    write_summary(root, document)
