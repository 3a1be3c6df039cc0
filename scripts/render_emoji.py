"""Render the official emoji from the Noto Color Emoji font into the 128x128 PNGs
shipped in cellsim/data/emoji (run once; needs Debian's fonts-noto-color-emoji)."""
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cellsim.target_images import EMOJI, EMOJI_DIR  # noqa: E402

FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
SIZE = 128  # the size of the PNGs the official notebook fetched


def render(char: str) -> Image.Image:
    font = ImageFont.truetype(FONT, 109)  # the one bitmap size of this CBDT font
    canvas = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((0, 0), char, font=font, embedded_color=True)
    glyph = canvas.crop(canvas.getbbox())
    side = max(glyph.size)
    square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    square.paste(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    return square.resize((SIZE, SIZE), Image.LANCZOS)


if __name__ == "__main__":
    EMOJI_DIR.mkdir(parents=True, exist_ok=True)
    for name, char in EMOJI.items():
        render(char).save(EMOJI_DIR / f"{name}.png", optimize=True)
        print(name, EMOJI_DIR / f"{name}.png")
