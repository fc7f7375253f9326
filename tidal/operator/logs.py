"""Log output of ``tidal run``: one JSON object per line (for log pipelines) or plain text.

kopf logs through the standard ``logging`` module ("kopf.*" loggers) and adds the object's
namespace/name to records from handlers (``record.k8s_ref``); both formats show them.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
NOISY_LOGGERS = ("urllib3", "kubernetes", "aiohttp.access")
"""Libraries whose INFO/DEBUG lines are about connections, not about decisions."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            out["object"] = {k: ref.get(k) for k in ("namespace", "name") if ref.get(k)}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict) and ref.get("name"):
            where = f"{ref.get('namespace')}/{ref['name']}" if ref.get("namespace") else ref["name"]
            text = text.replace(record.getMessage(), f"[{where}] {record.getMessage()}", 1)
        return text


def configure_logging(log_format: str, log_level: str) -> None:
    """Replace the root handlers with one stderr handler in the chosen format."""
    if log_format not in ("json", "plain"):
        raise ValueError(f"--log-format={log_format!r}: choose json or plain")
    if log_level not in LEVELS:
        raise ValueError(f"--log-level={log_level!r}: choose one of {', '.join(LEVELS)}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else PlainFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[log_level])
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(LEVELS[log_level], logging.WARNING))
