"""What a sandbox child does (worker/sandbox.py runs it): look over an upload, read one of its
pages, render its results. Every byte of the upload is parsed here, never in the worker."""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from worker.documents import Document
from worker.ink import has_ink
from worker.ocr import OcrEngine
from worker.render import render_all
from worker.results import DocumentText, PageText
from worker.upright import UprightPolicy, read_upright

# Documents a child keeps open: the jobs whose pages it is reading at the same time.
OPEN_DOCUMENTS = 4


@dataclass(frozen=True)
class Survey:
    """How many pages, and how many pixels each will have: for page limits and for reading the
    largest pages first."""

    path: str
    mime_type: str
    max_pages: int


@dataclass(frozen=True)
class ReadPage:
    path: str
    mime_type: str
    number: int
    language: str
    timeout_seconds: float


@dataclass(frozen=True)
class Render:
    path: str
    mime_type: str
    doc: DocumentText


@dataclass(frozen=True)
class ChildSetup:
    """Everything a child needs to build its handler; sent to it once, when it starts."""

    tessdata_dir: str
    max_image_pixels: int
    pdf_dpi: int
    policy: UprightPolicy

    def __call__(self) -> ChildWork:
        Image.MAX_IMAGE_PIXELS = self.max_image_pixels
        return ChildWork(self)


class ChildWork:
    """The handler a child answers requests with: one warm engine, a few open documents."""

    def __init__(self, setup: ChildSetup) -> None:
        self.setup = setup
        self.engine = OcrEngine(setup.tessdata_dir)
        self._documents: OrderedDict[tuple[str, str, int, int, int], Document] = OrderedDict()

    def __call__(self, request: Survey | ReadPage | Render) -> list[int] | PageText | dict[str, bytes]:
        if isinstance(request, Survey):
            document = self._document(request.path, request.mime_type)
            pages = document.check_pages(request.max_pages)
            return [document.page_pixels(n) for n in range(1, pages + 1)]
        if isinstance(request, ReadPage):
            return self._read(request)
        if isinstance(request, Render):
            self._forget(request.path)  # the job is done reading
            return render_all(request.doc, Path(request.path), request.mime_type, self.setup.tessdata_dir)
        raise TypeError(f"unknown sandbox request {type(request).__name__}")

    def _read(self, request: ReadPage) -> PageText:
        page = self._document(request.path, request.mime_type).page(request.number)
        if page.text_layer is not None:
            return page.text_layer
        image = page.image
        assert image is not None
        try:
            if not has_ink(image):
                return PageText(number=page.number, width=image.width, height=image.height, source="blank")
            return read_upright(
                self.engine, image, request.language, request.number, request.timeout_seconds, self.setup.policy
            )
        finally:
            image.close()

    def _document(self, path: str, mime_type: str) -> Document:
        # The file's identity, not only its name: a path reused for another file (a test's, or a
        # job folder recycled) must not find the old one open.
        info = os.stat(path)
        key = (path, mime_type, info.st_ino, info.st_mtime_ns, info.st_size)
        document = self._documents.get(key)
        if document is None:
            document = Document(Path(path), mime_type, self.setup.max_image_pixels, self.setup.pdf_dpi)
            self._documents[key] = document
            while len(self._documents) > OPEN_DOCUMENTS:
                self._documents.popitem(last=False)[1].close()
        self._documents.move_to_end(key)
        return document

    def _forget(self, path: str) -> None:
        for key in [k for k in self._documents if k[0] == path]:
            self._documents.pop(key).close()

    def close(self) -> None:
        for document in self._documents.values():
            document.close()
        self._documents.clear()
        self.engine.close()
