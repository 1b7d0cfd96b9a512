"""The model card: a markdown page written from a run's metadata and metrics."""

from __future__ import annotations

import json
from pathlib import Path

from fervideo.catalog import METADATA_FILE
from fervideo.core import EMOTIONS
from fervideo.training.atomic import write_text_atomically
from fervideo.training.precision import policy_name


def write_card(run: Path, notes: str = "") -> Path:
    """Write `run/README.md` from `metadata.json`, the metrics files and the plots there.

    `notes` (markdown) is added under "Why this recipe"; it is kept from an earlier card.
    """
    meta = json.loads((run / METADATA_FILE).read_text())
    card = run / "README.md"
    notes = notes or _kept_notes(card)
    lines = [f"# Model card: `{meta['name']}`", ""]
    lines += _ensemble_sections(meta) if "members" in meta else _single_model_sections(meta)
    if notes:
        lines += ["", "## Why this recipe", notes.strip()]
    lines += [
        "",
        "## Results",
        "",
        "| split | test-time augmentation | accuracy | loss | macro-F1 | "
        + " | ".join(f"recall {c}" for c in EMOTIONS)
        + " |",
        "|---" * (5 + len(EMOTIONS)) + "|",
    ]
    for path in sorted(run.glob("metrics_*.json")):
        m = json.loads(path.read_text())
        lines.append(
            f"| {m['split']} | {m['tta']} | {m['accuracy']:.2%} | {m['loss']:.3f} | "
            f"{m['macro_f1']:.3f} | "
            + " | ".join(f"{m['per_class'][c]['recall']:.1%}" for c in EMOTIONS)
            + " |"
        )
    lines += ["", "## Curves", ""]
    lines += [f"![{p.stem}]({p.name})" for p in sorted(run.glob("curves*.png"))]
    lines += ["", "## Confusion", ""]
    lines += [f"![{p.stem}]({p.name})" for p in sorted(run.glob("confusion_*.png"))]
    write_text_atomically(card, "\n".join(lines) + "\n")
    return card


def _single_model_sections(meta: dict) -> list[str]:
    recipe, data, training = meta["recipe"], meta["data"], meta["training"]
    return [
        f"Architecture `{meta['architecture']}`, {meta['parameters']:,} parameters, "
        f"input {'x'.join(map(str, meta['input']['shape']))} grayscale, "
        f"standardised inside the model with mean {meta['normalisation']['mean']:.2f} and "
        f"std {meta['normalisation']['std']:.2f} (the training split's). Classes, in output "
        f"order: {', '.join(meta['classes'])}.",
        "",
        "## Data",
        *_data_lines(data),
        "- The model is the last epoch's: no checkpoint was picked by its validation score.",
        "",
        "## Recipe",
        *_recipe_lines(meta["architecture"], recipe, training, meta["keras_version"]),
        f"- Reproduce: {_command(meta['architecture'], recipe)}",
    ]


def _ensemble_sections(meta: dict) -> list[str]:
    members = meta["members"]
    linked = "linked_members" in meta
    lines = [
        f"Ensemble of {len(members)} models ("
        + ", ".join(f"member {i}: {_member_text(m)}" for i, m in enumerate(members, 1))
        + f"), {meta['parameters']:,} parameters in all. Its output is the {meta['combination']}: "
        f"one forward pass runs every member. Input "
        f"{'x'.join(map(str, meta['input']['shape']))} grayscale, standardised inside each member. "
        f"Classes, in output order: {', '.join(meta['classes'])}.",
        *(
            [
                "",
                "A linked ensemble: it holds no weights of its own but names its members, which "
                "fervideo loads by name and checks by sha256 (so bundled weights are stored once).",
            ]
            if linked
            else []
        ),
        "",
        "## Data",
        *_data_lines(meta["data"]),
        "- Each member is its run's last epoch: none was picked by its validation score.",
        "",
        "## Recipe",
    ]
    for i, m in enumerate(members, 1):
        lines += [f"- Member {i}, `{m.get('name')}` (sha256 `{m['sha256'][:12]}…`):"]
        lines += ["  " + line for line in _member_recipe_lines(m)]
    sources = " ".join(m["name"] if linked else f"MEMBER{i}.keras" for i, m in enumerate(members, 1))
    scored = " --data FER2013_FOLDER_OR_CSV" if meta["metrics"] else ""
    lines += [
        f"- Made with `fervideo ensemble {sources} --name {meta['name']} --out models/{meta['name']}"
        f"{' --link' if linked else ''}{scored}` (Keras {meta['keras_version']}).",
    ]
    return lines


def _member_text(member: dict) -> str:
    if "members" in member:  # itself an ensemble
        return f"`{member['name']}`, an ensemble of {len(member['members'])}"
    return f"`{member['architecture']}`, {member['recipe']['epochs']} epochs"


def _member_recipe_lines(member: dict) -> list[str]:
    if "members" in member:
        lines = []
        for inner in member["members"]:
            lines += [f"- its member `{inner.get('name')}` (sha256 `{inner['sha256'][:12]}…`):"]
            lines += ["  " + line for line in _member_recipe_lines(inner)]
        return lines
    return [
        *_recipe_lines(member["architecture"], member["recipe"], member["training"]),
        f"- Reproduce: {_command(member['architecture'], member['recipe'])}",
    ]


def _data_lines(data: dict) -> list[str]:
    return [
        f"- Trained on FER2013 `{data['train_split']}` ({data['train_images']:,} images); "
        f"validation curves on `{data['validation_split']}` ({data['validation_images']:,})."
    ]


def _recipe_lines(
    architecture: str, recipe: dict, training: dict, keras_version: str | None = None
) -> list[str]:
    keras_text = f"Keras {keras_version}, " if keras_version else ""
    return [
        f"- `{architecture}`: {recipe['epochs']} epochs, batch {recipe['batch_size']}, "
        f"{recipe['optimizer']}, learning rate {recipe['learning_rate']} ({recipe['schedule']}), "
        f"weight decay {recipe['weight_decay']}, {recipe['loss']} with label smoothing "
        f"{recipe['label_smoothing']}, {_precision_text(recipe)}, seed {recipe['seed']}.",
        f"- Augmentation: {_augment_text(recipe['augment'])}.",
        *(
            [
                "- After training, the batch-normalisation statistics were re-estimated on the "
                "un-augmented training split with the final weights."
            ]
            if recipe.get("recalibrate_bn")
            else []
        ),
        f"- Trained in {training['seconds'] / 60:.1f} min on {training['device']}, "
        f"{keras_text}{training['backend']} backend.",
    ]


def _kept_notes(card: Path) -> str:
    if not card.is_file():
        return ""
    text = card.read_text()
    start = text.find("## Why this recipe")
    if start < 0:
        return ""
    body = text[start + len("## Why this recipe") :]
    return body[: body.find("\n## ")].strip() if "\n## " in body else body.strip()


def _augment_text(augment: dict) -> str:
    parts = []
    if augment["flip"]:
        parts.append("horizontal flip")
    if augment["rotation_deg"]:
        parts.append(f"rotation ±{augment['rotation_deg']}°")
    if augment["zoom"]:
        parts.append(f"zoom ±{augment['zoom']:.0%}")
    if augment["shift"]:
        parts.append(f"shift ±{augment['shift']:.0%}")
    if augment["erasing"]:
        parts.append(f"random erasing (p={augment['erasing']})")
    if augment.get("low_resolution"):
        parts.append(f"low resolution, 20 or 32 px upscaled (p={augment['low_resolution']})")
    return ", ".join(parts) or "none"


_POLICY_NAMES = {"mixed_bfloat16": "bfloat16 mixed", "float32": "float32"}


def _precision_segments(recipe: dict) -> list[tuple[int, str]]:
    """(first epoch, dtype policy) of each stretch of the run; metadata from before runs could
    change precision has only the flag."""
    saved = recipe.get("precision_segments")
    if saved:
        return [tuple(segment) for segment in saved]
    return [(0, policy_name(recipe["mixed_precision"]))]


def _precision_text(recipe: dict) -> str:
    segments = _precision_segments(recipe)
    if len(segments) == 1:
        return f"{_POLICY_NAMES[segments[0][1]]} precision"
    ends = [start for start, _ in segments[1:]] + [recipe["epochs"]]
    return "precision " + ", ".join(
        f"{_POLICY_NAMES[policy]} in epochs {start + 1}-{end}"
        for (start, policy), end in zip(segments, ends, strict=True)
    )


def _precision_flag(policy: str) -> str:
    return "--mixed-precision" if policy == policy_name(True) else "--no-mixed-precision"


def _command(architecture: str, r: dict) -> str:
    """The commands (markdown) that rebuild a model: one run, then one `--resume` per
    re-planned length or change of precision, saying where a run was stopped before its
    planned end."""
    replanned = r.get("replanned", [])
    segments = _precision_segments(r)
    first_epochs = replanned[0][1] if replanned else r["epochs"]
    same_run = f"--model {architecture} --data FER2013_FOLDER_OR_CSV"
    options = [
        same_run,
        f"--epochs {first_epochs}",
        f"--batch-size {r['batch_size']}",
        f"--lr {r['learning_rate']}",
        f"--weight-decay {r['weight_decay']}",
        f"--label-smoothing {r['label_smoothing']}",
        f"--seed {r['seed']}",
        _precision_flag(segments[0][1]),
    ]
    if r["holdout"]:
        options.append(f"--holdout {r['holdout']}")
    if r["imagenet_weights"]:
        options.append("--imagenet-weights IMAGENET_NOTOP_H5")
    if r.get("recalibrate_bn"):
        options.append("--recalibrate-bn")
    if r.get("class_balance"):
        options.append(f"--class-balance {r['class_balance']}")
    if r.get("teacher"):
        teacher = r.get("teacher_model", {}).get("name", "TEACHER")
        options.append(
            f"--teacher {teacher} --distill-weight {r['distill_weight']} --temperature {r['temperature']}"
        )
    text = "`fervideo train " + " ".join(options) + "`"
    replans = {at: (planned, total) for at, planned, total in replanned}
    switches = {at: _precision_flag(policy) for at, policy in segments[1:]}
    length = first_epochs  # the run's planned length
    for at in sorted({*replans, *switches}):
        flags, length_then = [], length
        if at in replans:
            length_then, length = replans[at]
            flags.append(f"--epochs {length}")
        if at in switches:
            flags.append(switches[at])
        stopped = f", stopped after epoch {at}," if at < length_then else ""
        text += f"{stopped} then `fervideo train {same_run} --resume {' '.join(flags)}`"
    return text
