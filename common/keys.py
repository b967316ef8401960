"""The S3 key scheme both services use (Redis names live in ``common/jobqueue/names.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


# S3: uploads and results share the user/month/file prefix so one file's objects sit together.
@dataclass(frozen=True)
class ResultFormat:
    filename: str
    content_type: str
    description: str


# Every format the worker writes from one reading of the pages: the one list the API's
# ``?format=``, the OpenAPI document and the docs are made from.
RESULT_FORMATS: dict[str, ResultFormat] = {
    "html": ResultFormat("result.html", "text/html; charset=utf-8", "standalone HTML document (the default)"),
    "txt": ResultFormat("result.txt", "text/plain; charset=utf-8", "plain text, pages separated by form feeds"),
    "json": ResultFormat("result.json", "application/json", "every word with its box and confidence, per page"),
    "pdf": ResultFormat("result.pdf", "application/pdf", "searchable PDF: the original pages with invisible text"),
    "hocr": ResultFormat("result.hocr", "application/xhtml+xml; charset=utf-8", "hOCR 1.2 (XHTML)"),
    "alto": ResultFormat("result.alto.xml", "application/xml; charset=utf-8", "ALTO 4 XML"),
}
# Written last: its key in the files row marks a task's results complete.
RESULT_PRIMARY = "html"
# What tasks completed before the other formats existed have.
LEGACY_RESULT_FORMATS = ("html", "txt", "json")


def _month(when: datetime) -> str:
    return when.strftime("%Y-%m")


def upload_key(user_id: str, file_id: str, safe_filename: str, when: datetime) -> str:
    return f"uploads/{user_id}/{_month(when)}/{file_id}/{safe_filename}"


def result_key(user_id: str, file_id: str, when: datetime, fmt: str = RESULT_PRIMARY) -> str:
    return f"results/{user_id}/{_month(when)}/{file_id}/{RESULT_FORMATS[fmt].filename}"


def result_variant(primary_key: str, fmt: str) -> str:
    """The key of another result format stored beside the primary one (result.html)."""
    return primary_key.rsplit("/", 1)[0] + "/" + RESULT_FORMATS[fmt].filename


def task_object_keys(upload: str, primary_result: str | None) -> list[str]:
    """Every object a task may have: its upload and, once it has results, each format's."""
    if not primary_result:
        return [upload]
    return [upload, *(result_variant(primary_result, fmt) for fmt in RESULT_FORMATS)]


def content_type(fmt: str) -> str:
    return RESULT_FORMATS[fmt].content_type
