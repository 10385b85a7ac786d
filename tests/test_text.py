"""Text the package writes (_utils/text.py): no CSV cell a spreadsheet would evaluate, names that print."""

import csv
import io
import os

import keras
import numpy as np

from keras_alexnet import TINY, AlexNet
from keras_alexnet._utils.text import SafeCSVWriter, printable, spreadsheet_safe
from keras_alexnet.cli import main
from keras_alexnet.layers import attach_class_names


def _number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def test_csv_cells_that_a_spreadsheet_would_evaluate_are_neutralised(tmp_path, capsys):
    assert spreadsheet_safe("=1+2") == "'=1+2" and spreadsheet_safe("@SUM(A1)") == "'@SUM(A1)"
    assert spreadsheet_safe("-0.25") == "-0.25" and spreadsheet_safe(-0.25) == -0.25  # numbers stay numbers
    assert spreadsheet_safe("cats") == "cats"
    buffer = io.StringIO()
    SafeCSVWriter(buffer).writerow(["+cmd|' /C calc'!A0", 3, "\tx"])
    assert next(csv.reader(io.StringIO(buffer.getvalue()))) == ["'+cmd|' /C calc'!A0", "3", "'\tx"]

    names = ['=HYPERLINK("http://x")', "-dogs"]
    keras.utils.set_random_seed(0)
    model = attach_class_names(AlexNet(weights=None, classes=2, architecture=TINY), names)
    model.save(tmp_path / "model.keras")
    folder = tmp_path / "=cmd"
    folder.mkdir()
    for name in ("+1.png", "@SUM(1).png", "-2+3.png"):
        keras.utils.save_img(folder / name, np.full((40, 40, 3), 90, np.uint8))
    out = tmp_path / "predictions.csv"
    assert main(["predict", "--model", str(tmp_path / "model.keras"), str(folder), "--out", str(out)]) == 0
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "@")) and not (cell.startswith("-") and not _number(cell)), row
        assert row["class"] in ("'" + names[0], "'" + names[1])


def test_a_file_name_that_is_not_utf8_prints_escaped(tmp_path):
    name = os.fsdecode(b"caf\xe9.png")
    assert printable(tmp_path / name).endswith("caf\\xe9.png")
    assert printable("plain é.png") == "plain é.png"


def test_class_names_with_escape_sequences_print_as_text_and_mathtext_draws_literally(tmp_path, capsys):
    hostile = ["\x1b[2J\x1b]0;owned\x07cat", "dog\r\x1b[32mall images verified\x1b[0m", "$\\sqrt{\\undefinedcommand}$"]
    assert printable(hostile[0]) == "\\x1b[2J\\x1b]0;owned\\x07cat"
    assert printable("left\u202eright") == "left\\u202eright" and printable("chat noir 猫") == "chat noir 猫"
    keras.utils.set_random_seed(0)
    model = attach_class_names(AlexNet(weights=None, classes=3, architecture=TINY), hostile)
    model.save(tmp_path / "model.keras")
    image = tmp_path / "x.png"
    keras.utils.save_img(image, np.full((40, 40, 3), 90, np.uint8))
    assert main(["predict", "--model", str(tmp_path / "model.keras"), str(image), "--top", "3"]) == 0
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and "\r" not in out + err and "\x07" not in out + err
    assert "\\x1b[2J" in out and "\\x1b[32mall images verified" in out
    # explain draws the class names literally: mathtext would fail the whole figure
    written = tmp_path / "explained"
    assert main(["explain", "--model", str(tmp_path / "model.keras"), str(image), "--out", str(written)]) == 0
    assert len(list(written.glob("*.png"))) == 1 and "\x1b" not in capsys.readouterr().err
