"""The data converter every client, worker and replayer of the Temporal engine uses.

Temporal's default JSON converter sorts object keys. Key order is part of what an
expression sees (``$keys``, ``$each``, ``$string``), so a run's input or an action's output
sorted on its way through Temporal would decide differently from the same run on a local
engine, and a run moved between engines could diverge. This converter writes JSON with
the keys in the order given and is otherwise the default one.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)

__all__ = ["DATA_CONVERTER", "OrderPreservingPayloadConverter"]


class _OrderPreservingJSON(JSONPlainPayloadConverter):
    def to_payload(self, value: Any) -> Payload | None:
        return Payload(
            metadata={"encoding": self.encoding.encode()},
            data=json.dumps(value, cls=self._encoder, separators=(",", ":")).encode(),
        )


class OrderPreservingPayloadConverter(CompositePayloadConverter):
    """The default payload converters, with JSON that keeps object keys in order."""

    def __init__(self) -> None:
        super().__init__(*(
            _OrderPreservingJSON() if isinstance(c, JSONPlainPayloadConverter) else c
            for c in DefaultPayloadConverter.default_encoding_payload_converters
        ))


DATA_CONVERTER = dataclasses.replace(
    DataConverter.default, payload_converter_class=OrderPreservingPayloadConverter
)
"""Pass as ``data_converter`` to ``Client.connect`` and ``Replayer``."""
