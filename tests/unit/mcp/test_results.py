"""Outputs sized for a model: ANSI-free text capped head+tail, images downscaled, HTML as text, errors flagged."""

from __future__ import annotations

import base64
import io
import random
import struct
import zlib

from PIL import Image

from gateway.mcp.results import Limits, cap_text, downscale, html_text, shape_outputs


def png_b64(width: int, height: int, noisy: bool = False) -> str:
    image = Image.new("RGB", (width, height), "white")
    if noisy:
        image = Image.frombytes("RGB", (width, height), random.Random(1).randbytes(width * height * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def size_of(data_b64: str) -> tuple[int, int]:
    with Image.open(io.BytesIO(base64.b64decode(data_b64))) as image:
        return image.size


def test_cap_text_keeps_head_and_tail_and_says_what_was_dropped() -> None:
    text = "".join(f"line {i}\n" for i in range(10_000))
    capped, dropped = cap_text(text, 1000)
    assert capped.startswith("line 0\n") and capped.endswith("line 9999\n")
    assert dropped == len(text) - 1000 and f"{dropped} characters dropped" in capped
    assert cap_text("short", 1000) == ("short", 0)


def test_streams_are_merged_without_ansi_and_stderr_is_marked() -> None:
    outputs = [
        {"output_type": "stream", "name": "stdout", "text": "\x1b[31mred\x1b[0m\n"},
        {"output_type": "stream", "name": "stderr", "text": "warning\n"},
    ]
    shaped = shape_outputs(outputs, Limits())
    assert [p.text for p in shaped.parts] == ["red\n[stderr] warning\n"]
    assert shaped.error is None and shaped.dropped_chars == 0


def test_long_output_is_capped_to_the_text_budget() -> None:
    shaped = shape_outputs([{"output_type": "stream", "name": "stdout", "text": "x" * 100_000}], Limits(2000))
    assert len(shaped.parts[0].text or "") < 2200 and shaped.dropped_chars == 98_000


def test_error_is_name_value_and_the_last_traceback_lines() -> None:
    traceback = [f"\x1b[0;32mframe {i}\x1b[0m" for i in range(40)]
    error = {"output_type": "error", "ename": "ValueError", "evalue": "bad \x1b[1mthing\x1b[0m", "traceback": traceback}
    shaped = shape_outputs([error], Limits())
    text = shaped.parts[0].text or ""
    assert shaped.error == "ValueError: bad thing"
    assert text.startswith("ValueError: bad thing") and "frame 39" in text and "frame 0\n" not in text
    assert "28 traceback lines dropped" in text and "\x1b" not in text


def test_small_png_passes_unchanged_and_a_large_one_is_downscaled() -> None:
    small = png_b64(100, 50)
    (part,) = shape_outputs([{"output_type": "display_data", "data": {"image/png": small}}], Limits()).parts
    assert part.image == small and part.mime_type == "image/png"

    big = {"output_type": "display_data", "data": {"image/png": png_b64(3000, 1500), "text/plain": "<Figure>"}}
    (part,) = shape_outputs([big], Limits(max_image_side=600)).parts
    assert part.image is not None and size_of(part.image) == (600, 300)


def test_image_over_the_byte_limit_is_reduced_until_it_fits() -> None:
    result = downscale(png_b64(800, 800, noisy=True), "image/png", Limits(max_image_side=1024, max_image_bytes=60_000))
    assert isinstance(result, tuple)
    assert len(base64.b64decode(result[0])) <= 60_000 and max(size_of(result[0])) < 800


def test_undecodable_and_oversized_images_become_markers() -> None:
    assert "could not be decoded" in str(downscale(base64.b64encode(b"not a png").decode(), "image/png", Limits()))
    # A valid PNG header announcing 100000 x 100000 pixels: never decoded.
    header = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
    marker = downscale(base64.b64encode(header + _chunk(b"IEND", b"")).decode(), "image/png", Limits())
    assert isinstance(marker, str) and "too many pixels" in marker


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_images_off_or_past_the_count_become_markers() -> None:
    image = {"output_type": "display_data", "data": {"image/png": png_b64(10, 10)}}
    shaped = shape_outputs([image], Limits(images=False))
    assert shaped.parts[0].image is None and "takes no images" in (shaped.parts[0].text or "")
    shaped = shape_outputs([image] * 3, Limits(max_images=2))
    assert [p.image is not None for p in shaped.parts] == [True, True, False] and shaped.images_dropped == 1


def test_html_only_output_becomes_its_text_and_text_plain_wins_when_present() -> None:
    html = (
        "<style>p{}</style><table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table><script>x</script>"
    )
    assert html_text(html) == "a\tb\n1\t2"
    (part,) = shape_outputs([{"output_type": "display_data", "data": {"text/html": html}}], Limits()).parts
    assert part.text == "a\tb\n1\t2"
    frame = {"output_type": "execute_result", "data": {"text/html": html, "text/plain": "   a  b\n0  1  2"}}
    assert shape_outputs([frame], Limits()).parts[0].text == "   a  b\n0  1  2"
    empty = shape_outputs([{"output_type": "display_data", "data": {"text/html": "<div></div>"}}], Limits())
    assert "HTML output of 11 characters" in (empty.parts[0].text or "")
