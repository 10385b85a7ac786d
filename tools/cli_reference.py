"""Write docs/cli.md, the command line's reference page, from the parser (``keras_alexnet.cli.reference``)."""

from pathlib import Path

from keras_alexnet._utils.files import atomic_write
from keras_alexnet.cli.reference import markdown

PAGE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"

if __name__ == "__main__":
    text = markdown()
    atomic_write(PAGE, lambda tmp: Path(tmp).write_text(text))
    print(f"wrote {PAGE}")
