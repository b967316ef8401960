"""The recognised text of a document, page by page, in reading order."""

from __future__ import annotations

from dataclasses import dataclass, field

Box = tuple[int, int, int, int]  # left, top, right, bottom (pixels, exclusive right/bottom)


def union(boxes: list[Box]) -> Box:
    return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)


@dataclass(frozen=True)
class Word:
    text: str
    confidence: float
    left: int
    top: int
    width: int
    height: int

    @property
    def box(self) -> Box:
        return self.left, self.top, self.left + self.width, self.top + self.height


@dataclass
class Line:
    words: list[Word] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def box(self) -> Box:
        return union([w.box for w in self.words])


@dataclass
class Paragraph:
    lines: list[Line] = field(default_factory=list)

    @property
    def box(self) -> Box:
        return union([line.box for line in self.lines])


@dataclass
class PageText:
    number: int
    width: int
    height: int
    paragraphs: list[Paragraph] = field(default_factory=list)
    seconds: float = 0.0
    # "ocr", "text-layer" (a PDF's own text, taken instead of OCR) or "blank" (nothing to read)
    source: str = "ocr"
    # How the image was turned before it was read (clockwise degrees: a quarter-turn multiple,
    # then the skew); the boxes are on the turned image, of size width x height.
    rotation: int = 0
    skew: float = 0.0
    # Size of the page image as decoded, before any turn (None: same as width x height).
    source_size: tuple[int, int] | None = None

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
