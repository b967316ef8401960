"""The results users download, every format from one reading of the pages: a standalone UTF-8
HTML5 page with every recognised character escaped, plain text, JSON with word boxes, hOCR and
ALTO (``worker/layout_xml.py``) and the searchable PDF (``worker/searchable_pdf.py``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from html import escape
from pathlib import Path

from common import keys
from worker.layout_xml import render_alto, render_hocr
from worker.results import DocumentText, PageText
from worker.searchable_pdf import render_pdf

LOW_CONFIDENCE = 60.0

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#111}
header dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}
header dt{font-weight:600}
section.page{border-top:1px solid #ccc;margin-top:1.5rem}
section.page h2{font-size:1rem;color:#555}
.low{background:#fff3c4}
""".strip()


def _fmt_conf(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _page_html(page: PageText) -> str:
    parts = [
        f'<section class="page" id="page-{page.number}" data-page="{page.number}" data-source="{page.source}">',
        f"<h2>Page {page.number}</h2>",
    ]
    if not page.paragraphs:
        parts.append('<p class="empty">(no text found)</p>')
    for paragraph in page.paragraphs:
        lines = []
        for line in paragraph.lines:
            words = []
            for word in line.words:
                cls = ' class="low"' if word.confidence < LOW_CONFIDENCE else ""
                words.append(f'<span data-conf="{word.confidence:.0f}"{cls}>{escape(word.text)}</span>')
            lines.append(" ".join(words))
        parts.append("<p>" + "<br>\n".join(lines) + "</p>")
    parts.append("</section>")
    return "\n".join(parts)


def render_html(doc: DocumentText) -> str:
    title = escape(doc.filename)
    header = "\n".join(
        [
            "<header>",
            f"<h1>{title}</h1>",
            "<dl>",
            f"<dt>File</dt><dd>{title}</dd>",
            f"<dt>Pages</dt><dd>{len(doc.pages)}</dd>",
            f"<dt>Language</dt><dd>{escape(doc.language)}</dd>",
            f"<dt>Mean confidence</dt><dd>{_fmt_conf(doc.mean_confidence)}</dd>",
            f"<dt>Engine</dt><dd>{escape(doc.engine)}</dd>",
            "</dl>",
            "</header>",
        ]
    )
    body = "\n".join(_page_html(page) for page in doc.pages)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="' + escape(doc.language.split("+")[0][:2]) + '">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # The document is data: no script may run in it even if a browser is tricked into it.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        f'<meta name="generator" content="untxt ({escape(doc.engine)})">\n'
        f"<title>{title} — OCR result</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"{header}\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def render_text(doc: DocumentText) -> str:
    """Plain UTF-8 text: pages separated by a form feed, as pdftotext does."""
    return "\f".join(page.text for page in doc.pages) + "\n"


def render_json(doc: DocumentText) -> str:
    """Every word with its box and confidence. Boxes are pixels of the page as it was read:
    after turning it clockwise by ``rotation`` (0/90/180/270) and then by ``skew`` degrees."""
    pages = []
    for page in doc.pages:
        words = []
        for p_index, paragraph in enumerate(page.paragraphs):
            for l_index, line in enumerate(paragraph.lines):
                for word in line.words:
                    words.append(
                        {
                            "text": word.text,
                            "confidence": round(word.confidence, 2),
                            "box": [word.left, word.top, word.width, word.height],
                            "paragraph": p_index,
                            "line": l_index,
                        }
                    )
        pages.append(
            {
                "page": page.number,
                "width": page.width,
                "height": page.height,
                "source": page.source,
                "rotation": page.rotation,
                "skew": page.skew,
                "meanConfidence": page.mean_confidence,
                "text": page.text,
                "words": words,
            }
        )
    body = {
        "filename": doc.filename,
        "language": doc.language,
        "engine": doc.engine,
        "meanConfidence": doc.mean_confidence,
        "pages": pages,
    }
    return json.dumps(body, ensure_ascii=False, indent=1)


_TEXT_RENDERERS: dict[str, Callable[[DocumentText], str]] = {
    "html": render_html,
    "txt": render_text,
    "json": render_json,
    "hocr": render_hocr,
    "alto": render_alto,
}


def render_all(doc: DocumentText, source: Path, mime_type: str, tessdata_dir: str) -> dict[str, bytes]:
    """Every format in ``keys.RESULT_FORMATS``, as the bytes to store."""
    rendered = {fmt: render(doc).encode("utf-8") for fmt, render in _TEXT_RENDERERS.items()}
    rendered["pdf"] = render_pdf(source, mime_type, doc, tessdata_dir)
    missing = set(keys.RESULT_FORMATS) - set(rendered)
    assert not missing, f"no renderer for {missing}"
    return rendered
