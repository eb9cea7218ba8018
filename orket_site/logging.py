"""Logging: JSON lines on stderr in production (or with ORKET_LOG_FORMAT=json), readable text lines
otherwise (or with ORKET_LOG_FORMAT=text); periodic housekeeping speaks only when it did something."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from orket_site.context import request_id_var, user_id_var

_STANDARD_ATTRIBUTES = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id", "user_id"}


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        if getattr(record, "user_id", None) is None:
            record.user_id = user_id_var.get()
        return True


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")


# What a housekeeping task returns when it found nothing to do, as Celery's log line shows it.
_NOTHING_DONE = {"0", "None", "{}", "[]", "()", "''", "False"}


def _housekeeping_tasks() -> frozenset[str]:
    from django.conf import settings

    schedule = getattr(settings, "CELERY_BEAT_SCHEDULE", {}) or {}
    return frozenset(entry["task"] for entry in schedule.values() if isinstance(entry, dict) and "task" in entry)


def _celery_task(record: logging.LogRecord) -> tuple[str | None, str | None]:
    """(task name, its return value as logged) of Celery's beat, received and succeeded lines."""
    args = record.args
    if record.name == "celery.beat" and isinstance(args, tuple) and len(args) == 2:
        return str(args[1]), None
    if record.name.startswith("celery.") and isinstance(args, dict) and "name" in args:
        value = args.get("return_value")
        return str(args["name"]), None if value is None else str(value)
    return None, None


class QuietHousekeepingFilter(logging.Filter):
    """Drop Celery's lines about the periodic tasks of CELERY_BEAT_SCHEDULE (sent, received,
    succeeded) unless the task returned something, that is, did something."""

    def __init__(self) -> None:
        super().__init__()
        self._tasks: frozenset[str] | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        task, returned = _celery_task(record)
        if task is None or record.levelno > logging.INFO:
            return True
        if self._tasks is None:
            self._tasks = _housekeeping_tasks()
        if task not in self._tasks:
            return True
        return returned is not None and returned not in _NOTHING_DONE


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "user_id"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = ""
        request_id = getattr(record, "request_id", None)
        if request_id:
            context = f" [req={request_id} user={getattr(record, 'user_id', None) or '-'}]"
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}{context}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line
