from html.parser import HTMLParser

from worker.render import render_html
from worker.results import DocumentText, Line, PageText, Paragraph, Word


def _doc(*words: str, conf: float = 95.0) -> DocumentText:
    page = PageText(number=1, width=100, height=100)
    page.paragraphs = [Paragraph(lines=[Line(words=[Word(w, conf, 0, 0, 1, 1) for w in words])])]
    return DocumentText(filename="<b>x</b>.png", language="eng", engine="tesseract 5.5.4", pages=[page])


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_recognised_markup_is_shown_as_text_never_run() -> None:
    html = render_html(_doc("<script>alert(1)</script>", "&amp;"))
    parsed = _Collector()
    parsed.feed(html)
    assert "script" not in parsed.tags
    assert "<script>alert(1)</script>" in "".join(parsed.text)
    assert "&amp;amp;" in html
    assert "<b>x</b>" not in html


def test_document_is_standalone_utf8_with_metadata() -> None:
    html = render_html(_doc("Tiếng", "Việt"))
    assert html.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in html
    assert "Tiếng" in html
    assert "Việt" in html
    assert 'id="page-1"' in html
    assert "tesseract 5.5.4" in html
    assert "Mean confidence</dt><dd>95.0" in html


def test_low_confidence_words_are_marked() -> None:
    html = render_html(_doc("blurry", conf=30))
    assert '<span data-conf="30" class="low">blurry</span>' in html
