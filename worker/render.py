"""The result document: a standalone UTF-8 HTML5 page with every recognised character escaped."""

from __future__ import annotations

import json
from html import escape

from worker.results import DocumentText, PageText

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
    """Every word with its box (pixels at the page's OCR resolution) and confidence."""
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
