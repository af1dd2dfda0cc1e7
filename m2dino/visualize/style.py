"""Colours, fonts and the few text primitives every overlay shares (PIL only)."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

# Distinct, saturated colours that stay readable on gray ultrasound (tab10 without its grays).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 127, 14), (31, 119, 180), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207), (255, 221, 0),
)
TEXT = (255, 255, 255)
TEXT_BACKGROUND = (0, 0, 0, 170)


def class_color(index: int) -> tuple[int, int, int]:
    """Colour of object / foreground class ``index`` (0-based among the coloured classes)."""
    return PALETTE[index % len(PALETTE)]


def font_for(size: tuple[int, int], scale: float = 1.0,
             minimum: int = 13) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A font that scales with the image (W, H), so labels stay legible on 300 px and 1500 px scans alike.
    ``scale`` > 1 for an image that will be shown shrunk by that factor (a panel tile)."""
    return ImageFont.load_default(size=round(max(minimum, min(size) / 28 / scale) * scale))


def line_width(size: tuple[int, int], scale: float = 1.0) -> int:
    return round(max(2, min(size) / 200 / scale) * scale)


def text_box(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font,
             color: tuple[int, int, int] = TEXT, anchor_bottom: bool = False) -> tuple[int, int, int, int]:
    """Text on a translucent dark box at ``xy`` (its top-left, or bottom-left with ``anchor_bottom``),
    kept inside the image; returns the box drawn."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(2, (bottom - top) // 5)
    width, height = right - left + 2 * pad, bottom - top + 2 * pad
    image_w, image_h = draw.im.size
    x = min(max(0, int(xy[0])), max(0, image_w - width))
    y = int(xy[1]) - (height if anchor_bottom else 0)
    y = min(max(0, y), max(0, image_h - height))
    draw.rectangle((x, y, x + width, y + height), fill=TEXT_BACKGROUND)
    draw.text((x + pad - left, y + pad - top), text, font=font, fill=color)
    return x, y, x + width, y + height


def draw_caption(image: Image.Image, lines: list[str], scale: float = 1.0) -> Image.Image:
    """``lines`` on a translucent band across the top of ``image`` (an RGB copy is returned)."""
    base = image.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font = font_for(base.size, scale)
    y = 0
    for line in lines:
        _, _, _, y = text_box(draw, (0, y), line, font)
    return Image.alpha_composite(base, layer).convert("RGB")
