"""Small real part files standing in for the embedded model's weight packages, and a model info that fits them."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from mislab.models.local.weights import LocalModelInfo

PART_SIZES = (1000, 70_000, 1)


def make_parts(directory: Path, sizes: tuple[int, ...] = PART_SIZES) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, size in enumerate(sizes, start=1):
        path = directory / f"part{i:02d}.bin"
        path.write_bytes(bytes((i * 7 + j) % 251 for j in range(size)))
        paths.append(path)
    return paths


def info_for(parts: list[Path], **changes: object) -> LocalModelInfo:
    data = b"".join(p.read_bytes() for p in parts)
    info = LocalModelInfo(
        name="fake-model",
        description="test parts",
        package_prefix="mislab_fake_weights_part",
        parts=len(parts),
        version="1.2.3",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        chat_template="qwen2.5-tools.jinja",
    )
    return replace(info, **changes)
