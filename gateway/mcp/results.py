"""Cell outputs sized for a language model's context (issue 12): what the MCP tools return.

- text (streams, ``text/plain``, ``text/markdown``, errors) without ANSI codes, capped: the head and the tail are
  kept and a marker says how much of the middle was dropped;
- images (``image/png``, ``image/jpeg``) as image content, downscaled with Pillow to ``max_image_side`` pixels and
  ``max_image_bytes``; an image that cannot be made small enough (or decoded) becomes a short text marker;
- HTML with no text alternative as its visible text, or a marker when that is empty;
- an error as ``Name: value`` and the last lines of its traceback.

Pure and synchronous (Pillow is CPU-bound): callers run ``shape_outputs`` off the event loop.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from PIL import Image, UnidentifiedImageError

from gateway.notebook.outputs import Output, strip_ansi_text

#: Images larger than this many pixels are not decoded at all (decompression bombs).
MAX_DECODED_PIXELS = 40_000_000
TRACEBACK_LINES = 12
TEXT_MIMES = ("text/markdown", "text/plain", "application/json", "text/latex")
IMAGE_MIMES = ("image/png", "image/jpeg")


@dataclass(frozen=True)
class Limits:
    """How much of a run a tool result may carry."""

    max_text_chars: int = 20_000
    max_image_side: int = 1024
    max_image_bytes: int = 400_000
    max_images: int = 4
    images: bool = True  # False: every image becomes a text marker (clients that take no images)


@dataclass
class Part:
    """One piece of a tool result: ``text``, or a base64 ``image`` of ``mime_type``."""

    text: str | None = None
    image: str | None = None
    mime_type: str = "image/png"


@dataclass
class Shaped:
    """What the model is shown of a run: parts in output order, whether it is an error, what was cut."""

    parts: list[Part] = field(default_factory=list)
    error: str | None = None  # "Name: value" of the first error output
    dropped_chars: int = 0
    images_dropped: int = 0


def cap_text(text: str, limit: int) -> tuple[str, int]:
    """``text`` cut to about ``limit`` characters, keeping its head and tail; the number of characters dropped."""
    if len(text) <= limit:
        return text, 0
    head = max(limit * 2 // 3, 1)
    tail = max(limit - head, 1)
    dropped = len(text) - head - tail
    marker = f"\n[... {dropped} characters dropped (the output kept its first and last parts) ...]\n"
    return text[:head] + marker + text[-tail:], dropped


class _TextOfHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "tr", "li", "h1", "h2", "h3", "table"):
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag in ("td", "th"):
            self.chunks.append("\t")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.chunks.append(data)


def html_text(html: str) -> str:
    """The visible text of an HTML fragment (scripts and styles left out), blank lines squeezed."""
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    lines = (line.strip() for line in "".join(parser.chunks).splitlines())
    return "\n".join(line for line in lines if line)


def downscale(data_b64: str, mime_type: str, limits: Limits) -> tuple[str, str] | str:
    """The image as (base64, mime type) within the limits, or a marker (text) saying why it is not shown."""
    try:
        raw = base64.b64decode(data_b64, validate=False)
        with Image.open(io.BytesIO(raw)) as image:
            width, height = image.size
            if width * height > MAX_DECODED_PIXELS:
                return f"[image {width}x{height} not shown: too many pixels to decode]"
            if max(width, height) <= limits.max_image_side and len(raw) <= limits.max_image_bytes:
                return data_b64, mime_type
            image.load()
            side = min(limits.max_image_side, max(width, height))
            while side >= 64:
                copy = image.copy()
                copy.thumbnail((side, side))
                encoded = _encode(copy, mime_type)
                if len(encoded) <= limits.max_image_bytes:
                    return base64.b64encode(encoded).decode(), mime_type
                side //= 2
            return f"[image {width}x{height} not shown: larger than {limits.max_image_bytes} bytes even when reduced]"
    except Image.DecompressionBombError:
        return f"[{mime_type} image not shown: too many pixels to decode]"
    except (UnidentifiedImageError, OSError, binascii.Error, ValueError) as error:
        return f"[{mime_type} image not shown: it could not be decoded ({type(error).__name__})]"


def _encode(image: Image.Image, mime_type: str) -> bytes:
    buffer = io.BytesIO()
    if mime_type == "image/jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=80)
    else:
        image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _error_text(output: Output) -> str:
    name, value = output.get("ename", ""), strip_ansi_text(str(output.get("evalue", "")))
    lines = [strip_ansi_text(str(line)) for line in output.get("traceback", [])]
    text = "\n".join(lines).splitlines()
    if len(text) > TRACEBACK_LINES:
        text = [f"[... {len(text) - TRACEBACK_LINES} traceback lines dropped ...]", *text[-TRACEBACK_LINES:]]
    body = "\n".join(text)
    return f"{name}: {value}" + (f"\nTraceback (last lines):\n{body}" if body else "")


def _bundle_parts(data: dict[str, Any], limits: Limits, shaped: Shaped) -> list[Part]:
    for mime in IMAGE_MIMES:
        if isinstance(data.get(mime), str):
            images = sum(part.image is not None for part in shaped.parts)
            if not limits.images or images >= limits.max_images:
                shaped.images_dropped += 1
                why = "this client takes no images" if not limits.images else f"more than {limits.max_images} images"
                return [Part(text=f"[{mime} image not shown: {why}]")]
            result = downscale(data[mime], mime, limits)
            if isinstance(result, str):
                shaped.images_dropped += 1
                return [Part(text=result)]
            return [Part(image=result[0], mime_type=result[1])]
    for mime in TEXT_MIMES:
        value = data.get(mime)
        if isinstance(value, str):
            return [Part(text=strip_ansi_text(value))]
        if value is not None:
            return [Part(text=str(value))]
    if isinstance(data.get("text/html"), str):
        text = html_text(data["text/html"])
        return [Part(text=text or f"[HTML output of {len(data['text/html'])} characters, no text in it]")]
    if data:
        return [Part(text=f"[output of type {', '.join(sorted(data))} not shown]")]
    return []


def shape_outputs(outputs: list[Output], limits: Limits) -> Shaped:
    """The outputs (nbformat v4) as parts a model can take: consecutive texts merged, each text capped."""
    shaped = Shaped()
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            text = strip_ansi_text(str(output.get("text", "")))
            parts = [Part(text=text if output.get("name") != "stderr" else f"[stderr] {text}")]
        elif kind == "error":
            text = _error_text(output)
            shaped.error = shaped.error or text.splitlines()[0]
            parts = [Part(text=text)]
        elif kind in ("display_data", "execute_result"):
            parts = _bundle_parts(dict(output.get("data") or {}), limits, shaped)
        else:
            continue
        for part in parts:
            last = shaped.parts[-1] if shaped.parts else None
            if part.text is not None and last is not None and last.text is not None:
                joiner = "" if last.text.endswith("\n") or not last.text else "\n"
                last.text += joiner + part.text
            else:
                shaped.parts.append(part)
    texts = [part for part in shaped.parts if part.text is not None]
    budget = max(limits.max_text_chars // max(len(texts), 1), 500)
    for part in texts:
        part.text, dropped = cap_text(part.text or "", budget)
        shaped.dropped_chars += dropped
    return shaped
