"""The recognised text of a document, page by page, in reading order."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Word:
    text: str
    confidence: float
    left: int
    top: int
    width: int
    height: int


@dataclass
class Line:
    words: list[Word] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


@dataclass
class Paragraph:
    lines: list[Line] = field(default_factory=list)


@dataclass
class PageText:
    number: int
    width: int
    height: int
    paragraphs: list[Paragraph] = field(default_factory=list)
    seconds: float = 0.0
    # "ocr", "text-layer" (a PDF's own text, taken instead of OCR) or "blank" (nothing to read)
    source: str = "ocr"

    @property
    def words(self) -> list[Word]:
        return [w for p in self.paragraphs for line in p.lines for w in line.words]

    @property
    def text(self) -> str:
        return "\n\n".join("\n".join(line.text for line in p.lines) for p in self.paragraphs)

    @property
    def mean_confidence(self) -> float | None:
        words = self.words
        return round(sum(w.confidence for w in words) / len(words), 2) if words else None


@dataclass
class DocumentText:
    filename: str
    language: str
    engine: str
    pages: list[PageText] = field(default_factory=list)

    @property
    def words(self) -> list[Word]:
        return [w for page in self.pages for w in page.words]

    @property
    def characters(self) -> int:
        return sum(len(page.text) for page in self.pages)

    @property
    def mean_confidence(self) -> float | None:
        words = self.words
        return round(sum(w.confidence for w in words) / len(words), 2) if words else None
