"""The S3 key scheme both services use (Redis names live in ``common/jobqueue/names.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


# S3: uploads and results share the user/month/file prefix so one file's objects sit together.
# A file's results live one level further down, in a folder per job run (its claim's
# ``tasks.attempts``): results/{user}/{YYYY-MM}/{file_id}/{attempt}/result.*. Two runs of one task
# (a slot presumed dead comes back while another slot completes the task) never write the same
# key, and ``files.s3_result_key`` names the folder of the run whose completion was recorded.
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
    # In UTC: the worker's psycopg2 hands timestamps over in the session's time zone, the API's
    # asyncpg in UTC, and both must name the same month for the API to find a file's results.
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m")


def upload_key(user_id: str, file_id: str, safe_filename: str, when: datetime) -> str:
    return f"uploads/{user_id}/{_month(when)}/{file_id}/{safe_filename}"


def results_prefix(user_id: str, file_id: str, when: datetime) -> str:
    """Where all of a file's results are: every run's folder (and, right under it, the results
    of tasks completed before results went per run)."""
    return f"results/{user_id}/{_month(when)}/{file_id}/"


def result_key(user_id: str, file_id: str, when: datetime, attempt: int, fmt: str = RESULT_PRIMARY) -> str:
    """The key of one format of the results of the job run that claimed the task as ``attempt``."""
    return f"{results_prefix(user_id, file_id, when)}{attempt}/{RESULT_FORMATS[fmt].filename}"


def results_prefix_of(primary_key: str) -> str:
    """The file's results prefix, from a recorded primary key of either layout
    (results/{user}/{YYYY-MM}/{file_id}/[{attempt}/]result.html)."""
    return "/".join(primary_key.split("/")[:4]) + "/"


def result_variant(primary_key: str, fmt: str) -> str:
    """The key of another result format stored beside the primary one (result.html), in the
    same folder: the same run's."""
    return primary_key.rsplit("/", 1)[0] + "/" + RESULT_FORMATS[fmt].filename


def content_type(fmt: str) -> str:
    return RESULT_FORMATS[fmt].content_type
