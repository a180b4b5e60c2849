"""Read back what a W&B run wrote offline: the records of its ``run-<id>.wandb`` file
(wandb's protobuf ``Record`` messages in LevelDB-log framing, as wandb-core writes them;
wandb 0.31 ships no Python reader) and the files beside it."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FILE_HEADER = struct.Struct("<4sHB")  # ":W&B", magic 0xBEE1, version
RECORD_HEADER = struct.Struct("<IHB")  # crc32c, length, type
BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def raw_records(path: Path) -> Iterator[bytes]:
    from google.protobuf.message import DecodeError

    data = Path(path).read_bytes()
    ident, magic, _ = FILE_HEADER.unpack_from(data, 0)
    assert ident == b":W&B" and magic == 0xBEE1, f"{path} is not a W&B run file"
    pos, pending = FILE_HEADER.size, b""
    while pos + RECORD_HEADER.size <= len(data):
        left = BLOCK - pos % BLOCK
        if left < RECORD_HEADER.size:  # the rest of a block is padding
            pos += left
            continue
        _, length, kind = RECORD_HEADER.unpack_from(data, pos)
        pos += RECORD_HEADER.size
        if pos + length > len(data):  # a record still being written
            raise DecodeError(f"{path}: the last record is cut short")
        chunk = data[pos : pos + length]
        pos += length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
        elif kind == 0 and length == 0:
            pos += BLOCK - pos % BLOCK if pos % BLOCK else 0
        else:
            raise AssertionError(f"{path}: unknown record type {kind} at {pos}")


def complete_records(path: Path, wait_s: float) -> list[Any]:
    """The records of a finished run's file. wandb's service may still be writing it when
    ``run.finish()`` has returned (seen once under load: a last record cut short), so read
    until the file parses and holds the run's exit record, for up to ``wait_s`` seconds."""
    import time

    from google.protobuf.message import DecodeError

    deadline = time.monotonic() + wait_s
    while True:
        late = time.monotonic() > deadline
        try:
            out = records(path)
        except DecodeError:
            if late:
                raise
        else:
            if late or any(r.WhichOneof("record_type") == "exit" for r in out):
                return out
        time.sleep(0.5)


def records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2

    out = []
    for raw in raw_records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        out.append(record)
    return out


class OfflineRun:
    """One offline run folder (``wandb/offline-run-*``): its records, decoded."""

    def __init__(self, folder: Path, wait_s: float = 30.0) -> None:
        self.folder = Path(folder)
        (self.file,) = self.folder.glob("run-*.wandb")
        self.records = complete_records(self.file, wait_s)

    def of(self, kind: str) -> list[Any]:
        return [getattr(r, kind) for r in self.records if r.WhichOneof("record_type") == kind]

    @property
    def run(self) -> Any:
        return self.of("run")[0]

    @property
    def config(self) -> dict[str, Any]:
        """The run's config: given at init (the run record), then updated."""
        out: dict[str, Any] = {}
        for config in [self.run.config, *self.of("config")]:
            _merge(out, config.update)
        return out

    @property
    def history(self) -> list[dict[str, Any]]:
        rows = []
        for record in self.of("history"):
            row: dict[str, Any] = {}
            _merge(row, record.item)
            rows.append(row)
        return rows

    @property
    def logged(self) -> dict[str, Any]:
        """Every history row merged: the last value of each key."""
        out: dict[str, Any] = {}
        for row in self.history:
            out.update(row)
        return out

    @property
    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for record in self.of("summary"):
            _merge(out, record.update)
        return out

    @property
    def exit_code(self) -> int | None:
        exits = self.of("exit")
        return exits[-1].exit_code if exits else None

    def media(self, name: str) -> Any:
        """The file a logged media value points to (parsed if JSON): in the run's files, or,
        for a table with images, in the staged artifact W&B made of it."""
        value = self.logged[name]
        path = self.folder / "files" / value["path"]
        if value.get("_type") == "table-file":
            artifact = self.artifact(f"-{name.replace('/', '')}")
            if artifact is not None:  # its JSON refers to the images staged beside it
                entry = next(e for e in artifact.manifest.contents if e.path.endswith(".json"))
                return json.loads(Path(entry.local_path).read_text())
        return json.loads(path.read_text()) if path.suffix == ".json" else path

    def artifact(self, suffix: str) -> Any:
        found = [a for a in self.of("artifact") if a.name.endswith(suffix)]
        return found[-1] if found else None


def _merge(out: dict[str, Any], items: Any) -> None:
    """Items with ``key`` or ``nested_key`` (path) and ``value_json`` into a nested dict."""
    for item in items:
        path = [item.key] if item.key else list(item.nested_key)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = json.loads(item.value_json)
