"""``bit_keras.publish``: an export packed as the ``.tar.gz`` that ``hub.KerasLayer(url)`` loads.

TF Hub's compressed-module resolver treats any ``http(s)://`` handle as a gzipped tarball
of a SavedModel directory: it downloads it into ``$TFHUB_CACHE_DIR`` and extracts it. So an
archive whose members are ``saved_model.pb``, ``variables/...`` and ``assets/...`` works from
any static web host or bucket. A model card (Markdown) is written beside it.
"""

import hashlib
import json
import os
import re
import tarfile

from bit_keras.exporter import saved_model as bit_saved_model
from bit_keras.utils import atomic

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def find_saved_model(export_dir):
    """The SavedModel directory of an export: itself, or its highest numeric version."""
    export_dir = os.fspath(export_dir)
    if os.path.isfile(os.path.join(export_dir, "saved_model.pb")):
        return export_dir
    versions = sorted(int(d) for d in (os.listdir(export_dir) if os.path.isdir(export_dir) else [])
                       if d.isdigit() and os.path.isfile(os.path.join(export_dir, d, "saved_model.pb")))
    if not versions:
        raise ValueError(
            "export_dir must be a SavedModel directory (with saved_model.pb) or a TF Serving "
            f"model directory with numeric versions. Received: export_dir={export_dir!r}")
    return os.path.join(export_dir, str(versions[-1]))


def default_name(metadata):
    """``bit_m-r50x1_feature_vector`` for a BiT-M-R50x1 feature-vector export."""
    name = metadata["name"].lower()
    if name.startswith("bit-"):
        name = "bit_" + name[4:]
    return f"{name}_{metadata['kind']}"


def publish(export_dir, out_dir, name=None, overwrite=False):
    """Packs an export as ``<out_dir>/<name>.tar.gz`` for ``hub.KerasLayer(url)``, with a card.

    Put the archive on any static host; then ``hub.KerasLayer("https://HOST/<name>.tar.gz",
    trainable=True)`` downloads, caches and loads it. ``<out_dir>/<name>.md`` is a model card
    (architecture, upstream data, input contract, outputs, signatures, SHA-256 of the archive).

    Args:
        export_dir: a directory written by ``bit_keras.export`` (a TF Serving model
            directory publishes its highest version).
        out_dir: where to write the archive and the card.
        name: the file name without ``.tar.gz``; default from the export, e.g.
            ``bit_m-r50x1_feature_vector``.
        overwrite: replace existing files; otherwise an existing archive is an error.

    Returns:
        The path of the ``.tar.gz`` archive.

    Example:

    >>> path = bit_keras.export(model, "exports/fv", kind="feature_vector")
    >>> bit_keras.publish(path, "public/")
    '/.../public/bit_m-r50x1_feature_vector.tar.gz'
    """
    saved = find_saved_model(export_dir)
    meta_path = os.path.join(saved, bit_saved_model.METADATA_PATH)
    metadata = {}
    if os.path.isfile(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            metadata = json.load(f)
    if name is None:
        if not metadata:
            raise ValueError(f"name is required for a SavedModel not written by bit_keras.export "
                             f"(no {bit_saved_model.METADATA_PATH}). Received: name=None")
        name = default_name(metadata)
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError("name must be a file name of letters, digits, '.', '_' and '-'. "
                         f"Received: name={name!r}")
    archive, card = check_targets(out_dir, name, overwrite)
    members = _members(saved)  # refuses a link out of the export before writing anything
    with atomic.atomic_file(archive, overwrite) as tmp:
        with tarfile.open(tmp, "w:gz") as tar:
            for source, arcname in members:
                tar.add(source, arcname=arcname, recursive=False, filter=_normalize)
        digest = _sha256(tmp)
    with atomic.atomic_file(card, overwrite) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(model_card(name, metadata, digest))
    return archive


def check_targets(out_dir, name, overwrite=False):
    """``(archive, card)`` paths ``publish`` writes; raises if one exists without ``overwrite``."""
    archive = os.path.join(os.path.abspath(os.fspath(out_dir)), name + ".tar.gz")
    card = os.path.join(os.path.dirname(archive), name + ".md")
    atomic.check_target(archive, overwrite)
    atomic.check_target(card, overwrite)
    return archive, card


def _members(saved):
    """``(path to read, name in the archive)`` of every entry of ``saved``, sorted.

    A symbolic link becomes the file or folder it points to when that is inside the export
    (the archive holds no links); one that points outside it (``assets/x -> /etc/passwd``)
    or nowhere is refused, so that publishing never ships a file the export does not hold.
    """
    root = os.path.realpath(saved)
    members, seen = [], {root}

    def visit(path, arcname):
        if os.path.islink(path):
            real = os.path.realpath(path)
            if os.path.commonpath([root, real]) != root or not os.path.exists(real):
                raise ValueError(
                    f"export_dir {saved!r} holds a symbolic link {arcname!r} -> "
                    f"{os.readlink(path)!r} that points outside it (or nowhere); an archive "
                    "holds only the export's own files. Replace the link by the file it "
                    "points to, or remove it. Nothing was written.")
            path = real
        members.append((path, arcname))
        if os.path.isdir(path):
            path = os.path.realpath(path)
            if path in seen:
                raise ValueError(f"export_dir {saved!r}: {arcname!r} links to a folder "
                                 "already in the archive (a cycle or a second name for it). Nothing was written.")
            seen.add(path)
            for entry in sorted(os.listdir(path)):
                visit(os.path.join(path, entry), f"{arcname}/{entry}")

    for entry in sorted(os.listdir(saved)):
        visit(os.path.join(saved, entry), entry)
    return members


def _normalize(info):
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _spec(dtype_shape):
    dtype, shape = dtype_shape
    names = ["batch", "height", "width"]
    dims = [names[i] if d is None and i < len(names) else str(d) for i, d in enumerate(shape)]
    return f"{dtype} `[{', '.join(dims)}]`"


def model_card(name, metadata, sha256):
    """The Markdown model card written beside a published archive."""
    lines = [f"# {name}", "", f"Archive: `{name}.tar.gz` (SHA-256 `{sha256}`), a TF2 SavedModel "
             "(TF Hub Reusable SavedModel API) exported by bit_keras.", ""]
    if metadata:
        kind = metadata["kind"]
        lines += [
            "## Model", "",
            f"- Model: `{metadata['name']}`, BiT ResNet-v2 with GroupNorm and Weight Standardization "
            "(Kolesnikov et al., Big Transfer, arXiv 1912.11370)"
            + (f", architecture {metadata['architecture']}" if metadata.get("architecture") else ""),
            f"- Upstream data: {metadata.get('upstream') or 'not a named bit_keras variant'}",
            f"- Kind: `{kind}`, {metadata['output_size']} outputs; "
            f"{metadata['num_parameters']:,} parameters",
            f"- Weight standardization folded at export: {metadata['fold_standardization']}"
            + (" (serving only, not fine-tunable)" if metadata["fold_standardization"] else ""),
            "", "## Input contract", "",
            "float32 RGB images in **[0, 1]**, `[batch, height, width, 3]`, any batch and size "
            "(the model maps them to [-1, 1] itself). The `image_bytes` signature takes "
            f"JPEG/PNG files and resizes them to {metadata['image_size']}x{metadata['image_size']}.",
            "", "## Signatures", "", "| signature | inputs | outputs |", "|---|---|---|"]
        for sig, spec in metadata["signatures"].items():
            ins = ", ".join(f"`{k}` {_spec(v)}" for k, v in spec["inputs"].items()) or "none"
            outs = ", ".join(f"`{k}` {_spec(v)}" for k, v in spec["outputs"].items())
            lines.append(f"| `{sig}` | {ins} | {outs} |")
        lines += ["", "`__call__(images, training=False)` returns the "
                  + {"feature_vector": "feature vector", "classifier": "logits"}.get(
                      kind, "block outputs (a dict)") + " and is traced for "
                  "training True and False.", ""]
    lines += [
        "## Use", "", "```python",
        "import tensorflow_hub as hub, tf_keras",
        f'layer = hub.KerasLayer("https://HOST/PATH/{name}.tar.gz", trainable=True)',
        "model = tf_keras.Sequential([tf_keras.Input((None, None, 3)), layer])",
        "```", ""]
    return "\n".join(lines)
