"""``runs/log-batch`` encoding and packing for the MLflow REST client: items within the server's limits."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracker_jupyter.online.rest.values import BatchLimits, ItemFailure, ItemKind, JsonObject, Metric


@dataclass
class Item:
    kind: ItemKind
    key: str
    payload: JsonObject
    size: int

    @property
    def ident(self) -> tuple[ItemKind, str]:
        return (self.kind, self.key)


def dump_json(obj: Any) -> str:
    # allow_nan=False: a bare NaN token is silently stored as 0 by the server (see module docstring).
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def _json_float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def metric_item(metric: Metric) -> Item | ItemFailure:
    try:
        payload = {
            "key": metric.key,
            "value": _json_float(float(metric.value)),
            "timestamp": int(metric.timestamp),
            "step": int(metric.step),
        }
    except (TypeError, ValueError) as exc:
        return ItemFailure(
            "metric", str(metric.key), f"not sent: value, timestamp or step is not a number ({exc})"
        )
    return Item("metric", metric.key, payload, len(dump_json(payload)))


def key_value_item(kind: ItemKind, key: str, value: Any) -> Item:
    payload = {"key": key, "value": value if isinstance(value, str) else str(value)}
    return Item(kind, key, payload, len(dump_json(payload)))


def key_values(mapping: Mapping[str, Any] | None) -> list[JsonObject]:
    return [{"key": k, "value": v if isinstance(v, str) else str(v)} for k, v in (mapping or {}).items()]


_BATCH_LISTS: dict[ItemKind, str] = {"metric": "metrics", "param": "params", "tag": "tags"}


def batch_body(run_id: str, items: Sequence[Item]) -> JsonObject:
    body: JsonObject = {"run_id": run_id, "metrics": [], "params": [], "tags": []}
    for item in items:
        body[_BATCH_LISTS[item.kind]].append(item.payload)
    return body


def pack_batches(run_id: str, items: Sequence[Item], limits: BatchLimits) -> list[list[Item]]:
    """Split items into request-sized chunks, params and tags first in each, then metrics to fill up."""
    overhead = len(dump_json(batch_body(run_id, [])))
    per_kind = {"param": limits.params, "tag": limits.tags, "metric": limits.metrics}
    queues: dict[ItemKind, list[Item]] = {"param": [], "tag": [], "metric": []}
    for item in items:
        queues[item.kind].append(item)
    positions = dict.fromkeys(queues, 0)
    chunks: list[list[Item]] = []
    while any(positions[kind] < len(queue) for kind, queue in queues.items()):
        chunk: list[Item] = []
        size = overhead
        for kind, queue in queues.items():
            taken = 0
            while positions[kind] < len(queue) and taken < per_kind[kind] and len(chunk) < limits.items:
                item = queue[positions[kind]]
                if size + item.size + 1 > limits.body_bytes:
                    break
                chunk.append(item)
                size += item.size + 1
                taken += 1
                positions[kind] += 1
        if not chunk:  # only reachable if an oversized item slipped through; never loop forever
            raise AssertionError("log_batch packing made no progress")
        chunks.append(chunk)
    return chunks


@dataclass
class BatchState:
    """What one ``log_batch`` call learned so far."""

    failures: dict[tuple[ItemKind, str], ItemFailure] = field(default_factory=dict)
    run_accepts_writes: bool = False


def record_failure(state: BatchState, kind: ItemKind, key: str, message: str, count: int) -> None:
    previous = state.failures.get((kind, key))
    if previous is None:
        state.failures[(kind, key)] = ItemFailure(kind, key, message, count)
    else:
        state.failures[(kind, key)] = ItemFailure(kind, key, previous.message, previous.count + count)
