"""The dataset contract: discovery, pairing, class.txt, and one test per dataset defect."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from datagen import BACKGROUND, HAIR, write_tiny_dataset
from PIL import Image

from animesis.data import layout
from animesis.data.layout import DatasetError, check_dataset, load_dataset, main_check
from animesis.data.palette import DEFAULT_PALETTE


@pytest.fixture
def ds(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "ds")


def check(root: Path, **kw):
    return check_dataset(root, workers=1, **kw)


def error_codes(report) -> list[str]:
    return [p.code for p in report.errors]


def warning_codes(report) -> list[str]:
    return [p.code for p in report.warnings]


def the_error(report, code: str):
    """The one error of the report, which must have this code."""
    assert error_codes(report) == [code], report.format()
    return report.errors[0]


def class_lines(root: Path) -> list[str]:
    return (root / "class.txt").read_text().splitlines()


def write_class_lines(root: Path, lines: list[str]) -> None:
    (root / "class.txt").write_text("\n".join(lines) + "\n")


def png_header(path: Path, width: int, height: int) -> None:
    """A PNG that declares a huge size in a few bytes, as a decompression bomb does."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


# --- a valid dataset -----------------------------------------------------------------------------


def test_valid_dataset_is_ok_and_summarised(ds):
    report = check(ds)
    assert report.ok and report.problems == [], report.format()
    info = report.info
    assert info.num_classes == 11 and info.num_characters == 3
    assert info.character_names == ("0", "1", "2")
    assert [len(info.splits[s]) for s in layout.SPLITS] == [8, 2, 4]
    assert all(s.edge is not None for split in info.splits.values() for s in split)
    s = info.splits["train"][1]
    assert (s.name, s.image.name, s.label.parent.name, s.edge.parent.name, s.character) == (
        "0001",
        "0001.png",
        "train_label",
        "train_edge",
        1,
    )
    summary = report.summary
    assert summary.header == "image_name character_id"
    assert dict(summary.splits["train"].per_character) == {0: 3, 1: 3, 2: 2}
    assert dict(summary.splits["train"].sizes) == {(32, 32): 8}
    assert summary.class_pixels.sum() == 8 * 32 * 32 and summary.class_maps[BACKGROUND] == 8
    text = report.format()
    assert "dataset OK" in text and "background" in text and "train        8       8  files" in text


def test_rgb_labels_read_as_the_same_classes(tmp_path):
    a = check(write_tiny_dataset(tmp_path / "a"))
    b = check(write_tiny_dataset(tmp_path / "b", label_mode="rgb"))
    assert b.ok, b.format()
    assert np.array_equal(a.summary.class_pixels, b.summary.class_pixels)


def test_val_split_is_optional(tmp_path):
    report = check(write_tiny_dataset(tmp_path / "ds", n_val=0))
    assert report.ok and report.info.splits["val"] == ()
    assert report.summary.splits["val"].edges == "-"


def test_without_edge_folders_edges_come_from_canny(tmp_path):
    report = check(write_tiny_dataset(tmp_path / "ds", edges=False))
    assert report.ok
    assert all(s.edge is None for s in report.info.splits["train"])
    assert (
        all(s.edge is None for s in report.info.splits["train"])
        and report.summary.splits["train"].edges == "Canny"
    )


def test_edges_may_be_0_255(ds):
    path = ds / "train_edge" / "0000.png"
    Image.fromarray((np.asarray(Image.open(path)) * 255).astype(np.uint8)).save(path)
    assert check(ds).ok


def test_pairing_is_by_name_not_listing_order(ds):
    # A JPEG image sorts differently from the PNGs but still pairs with its own label.
    Image.open(ds / "train_img" / "0003.png").save(ds / "train_img" / "zz.jpg", quality=95)
    (ds / "train_img" / "0003.png").unlink()
    (ds / "train_label" / "0003.png").rename(ds / "train_label" / "zz.png")
    (ds / "train_edge" / "0003.png").rename(ds / "train_edge" / "zz.png")
    write_class_lines(ds, [line.replace("0003.png", "zz.jpg") for line in class_lines(ds)])
    report = check(ds)
    assert report.ok, report.format()
    zz = next(s for s in report.info.splits["train"] if s.name == "zz")
    assert zz.label.name == "zz.png" and zz.character == 0


def test_class_names_with_prefix_either_slash_no_extension_spaces_and_bom(ds):
    lines = class_lines(ds)
    lines[1] = "C:\\data\\train_img\\0000.png 0   "  # Windows path, trailing spaces
    lines[2] = "train_img/0001 1"  # POSIX prefix, no extension: matches by stem
    lines.insert(3, "")  # blank line
    (ds / "class.txt").write_bytes(("\ufeff" + "\n".join(lines) + "\n").encode("utf-8"))
    report = check(ds)
    assert report.ok, report.format()
    assert [s.character for s in report.info.splits["train"][:2]] == [0, 1]


def test_file_names_with_spaces(ds):
    for kind in ("img", "label", "edge"):
        (ds / f"train_{kind}" / "0000.png").rename(ds / f"train_{kind}" / "my pic.png")
    write_class_lines(ds, [line.replace("0000.png", "my pic.png") for line in class_lines(ds)])
    report = check(ds)
    assert report.ok and report.info.splits["train"][-1].name == "my pic"


def test_first_line_that_names_an_image_is_an_entry(ds):
    write_class_lines(ds, class_lines(ds)[1:])  # no header
    report = check(ds)
    assert report.ok and report.summary.header is None
    assert report.info.splits["train"][0].character == 0


def test_explicit_class_file_wins(ds, tmp_path):
    other = tmp_path / "ids.txt"
    other.write_text("\n".join(line.replace(" 2", " 0") for line in class_lines(ds)))
    (ds / "class.txt").unlink()
    report = check(ds, class_file=other)
    assert report.ok and report.summary.class_file == other
    assert {s.character for s in report.info.splits["train"]} == {0, 1}


def test_class_num_sets_k(ds):
    report = check(ds, num_characters=5)
    assert report.ok and report.info.num_characters == 5
    assert warning_codes(report) == ["character-unseen"]  # characters 3 and 4 have no image


def test_cast_json_names_characters(ds):
    (ds / "cast.json").write_text(
        json.dumps({"characters": [{"id": 0, "name": "Ichika"}, {"id": 3, "name": "Futaro"}]})
    )
    report = check(ds)
    assert report.info.character_names == ("Ichika", "1", "2", "Futaro")
    assert warning_codes(report) == ["character-unseen"] and "3 (Futaro)" in report.warnings[0].message


def test_palette_json_sets_the_classes(ds):
    palette = DEFAULT_PALETTE.to_json()
    palette["classes"].append({"name": "horns", "color": [255, 0, 0]})
    (ds / "palette.json").write_text(json.dumps(palette))
    report = check(ds)
    assert report.ok and report.info.num_classes == 12 and report.summary.palette_source == "palette.json"


def test_quick_check_does_not_decode(ds):
    path = ds / "train_label" / "0000.png"
    Image.fromarray(np.full((32, 32), 40, np.uint8)).save(path)
    report = check(ds, deep=False)
    assert report.ok and report.summary.class_pixels is None
    assert error_codes(check(ds)) == ["label-values"]


def test_process_pool_gives_the_same_report(ds, monkeypatch):
    Image.fromarray(np.full((32, 32), 40, np.uint8)).save(ds / "train_label" / "0002.png")
    inline = check(ds)
    monkeypatch.setattr(layout, "_INLINE_BELOW", 1)
    pooled = check_dataset(ds, workers=2)
    assert pooled.problems == inline.problems
    assert np.array_equal(pooled.summary.class_pixels, inline.summary.class_pixels)


def test_check_is_read_only(ds):
    Image.fromarray(np.full((32, 32), 40, np.uint8)).save(ds / "train_label" / "0000.png")
    (ds / "train_img" / "0001.png").write_bytes(b"not a png")
    before = {
        p: (p.stat().st_mtime_ns, hashlib.sha1(p.read_bytes()).digest()) for p in ds.rglob("*") if p.is_file()
    }
    check(ds)
    after = {
        p: (p.stat().st_mtime_ns, hashlib.sha1(p.read_bytes()).digest()) for p in ds.rglob("*") if p.is_file()
    }
    assert before == after


# --- one test per defect -------------------------------------------------------------------------


def test_unreadable_image(ds):
    path = ds / "train_img" / "0001.png"
    path.write_bytes(b"this is not an image")
    p = the_error(check(ds), "unreadable")
    assert p.path == path and "not an image" in p.message


def test_truncated_image(ds):
    path = ds / "train_img" / "0001.png"
    path.write_bytes(path.read_bytes()[:200])
    p = the_error(check(ds), "corrupt")
    assert p.path == path and "truncated" in p.message


def test_image_and_label_sizes_differ(ds):
    path = ds / "train_label" / "0002.png"
    Image.open(path).resize((30, 32), Image.NEAREST).save(path)
    p = the_error(check(ds, deep=False), "size-mismatch")
    assert p.path == path and "30x32" in p.message and "32x32" in p.message


def test_edge_size_differs(ds):
    path = ds / "test_edge" / "0012.png"
    Image.open(path).resize((32, 31), Image.NEAREST).save(path)
    assert the_error(check(ds), "size-mismatch").path == path


def test_label_value_not_a_class(ds):
    path = ds / "train_label" / "0000.png"
    label = np.asarray(Image.open(path)).copy()
    label[:2, :2] = 11
    label[0, 0] = 200
    Image.fromarray(label).save(path)
    p = the_error(check(ds), "label-values")
    assert p.path == path and "11, 200" in p.message and "(4 pixels)" in p.message


def test_rgb_label_colour_not_in_palette(tmp_path):
    root = write_tiny_dataset(tmp_path / "ds", label_mode="rgb")
    path = root / "val_label" / "0008.png"
    rgb = np.asarray(Image.open(path)).copy()
    rgb[5, 5:8] = (1, 2, 3)
    Image.fromarray(rgb).save(path)
    p = the_error(check(root), "label-colors")
    assert p.path == path and "3 pixels" in p.message and "(1,2,3)" in p.message


def test_rgb_label_holding_indices_gets_a_hint(ds):
    path = ds / "train_label" / "0000.png"
    index = np.asarray(Image.open(path))
    Image.fromarray(np.stack([index] * 3, -1)).save(path)
    assert "class indices saved as RGB" in the_error(check(ds), "label-colors").message


def test_unsupported_label_mode(ds):
    path = ds / "train_label" / "0000.png"
    Image.open(path).convert("CMYK").save(path.with_suffix(".tif"))
    path.unlink()
    assert the_error(check(ds), "label-mode").path == path.with_suffix(".tif")


def test_p_mode_label_reads_raw_indices(ds):
    path = ds / "train_label" / "0000.png"
    index = np.asarray(Image.open(path))
    img = Image.fromarray(index).convert("P")  # identity grey palette: index i shows grey i
    img.putpalette([v for i in range(256) for v in (i, i, i)])
    img.save(path)
    assert check(ds).ok


def test_p_mode_label_with_colours_in_another_order(ds):
    path = ds / "train_label" / "0000.png"
    index = np.asarray(Image.open(path))
    img = Image.fromarray(index).convert("P")
    swapped = list(DEFAULT_PALETTE.colors)
    swapped[HAIR], swapped[BACKGROUND] = swapped[BACKGROUND], swapped[HAIR]
    img.putpalette([v for c in swapped for v in c])
    img.save(path)
    report = check(ds)
    assert report.ok and warning_codes(report) == ["label-p-order"]


def test_jpeg_label_is_a_warning(ds):
    path = ds / "train_label" / "0000.png"
    Image.open(path).save(path.with_suffix(".jpg"), quality=100)
    path.unlink()
    report = check(ds, deep=False)
    assert report.ok and warning_codes(report) == ["label-jpeg"]


def test_label_of_one_class_is_a_warning(ds):
    Image.fromarray(np.full((32, 32), BACKGROUND, np.uint8)).save(ds / "train_label" / "0000.png")
    report = check(ds)
    assert (
        report.ok
        and warning_codes(report) == ["label-one-class"]
        and "background" in report.warnings[0].message
    )


def test_edge_values_not_binary(ds):
    path = ds / "train_edge" / "0000.png"
    Image.fromarray((np.asarray(Image.open(path)) * 128).astype(np.uint8)).save(path)
    p = the_error(check(ds), "edge-values")
    assert p.path == path and "128" in p.message


def test_image_without_label(ds):
    (ds / "train_label" / "0004.png").unlink()
    p = the_error(check(ds), "no-label")
    assert p.path == ds / "train_img" / "0004.png" and "train_label/0004" in p.message


def test_image_without_edge_when_edges_exist(ds):
    (ds / "train_edge" / "0004.png").unlink()
    assert the_error(check(ds), "no-edge").path == ds / "train_img" / "0004.png"


def test_label_without_image_is_a_warning(ds):
    (ds / "train_img" / "0004.png").unlink()
    (ds / "train_edge" / "0004.png").unlink()
    report = check(ds)
    assert report.ok and warning_codes(report) == ["no-image", "class-unused"]


def test_label_folder_missing(ds):
    for p in (ds / "test_label").iterdir():
        p.unlink()
    (ds / "test_label").rmdir()
    assert the_error(check(ds), "folder-missing").path == ds / "test_label"


def test_same_stem_twice_in_a_folder(ds):
    Image.open(ds / "train_img" / "0000.png").save(ds / "train_img" / "0000.jpg")
    p = the_error(check(ds), "duplicate-stem")
    assert p.path == ds / "train_img" / "0000.png" and "0000.jpg" in p.message


def test_image_missing_from_class_file(ds):
    write_class_lines(ds, [line for line in class_lines(ds) if not line.startswith("0005.png")])
    p = the_error(check(ds), "class-no-entry")
    assert p.path == ds / "train_img" / "0005.png"


def test_class_file_missing(ds):
    (ds / "class.txt").unlink()
    p = the_error(check(ds), "class-missing")  # one error, not one per image
    assert p.path == ds / "class.txt"


def test_class_file_empty(ds):
    (ds / "class.txt").write_text("name id\n\n")
    report = check(ds)
    assert error_codes(report)[0] == "class-empty" and set(error_codes(report)[1:]) == {"class-no-entry"}


def test_class_file_not_utf8(ds):
    (ds / "class.txt").write_bytes("名前 id\n0000.png 0\n".encode("gbk"))
    assert "not UTF-8" in the_error(check(ds), "class-encoding").message


def test_character_id_not_below_class_num(ds):
    report = check(ds, num_characters=2)
    assert error_codes(report) == ["class-id-range"] * 3  # the three images of character 2
    p = report.errors[0]
    assert p.path == ds / "class.txt" and "line 4" in p.message and "--class_num 2" in p.message


def test_character_id_negative(ds):
    write_class_lines(ds, [line.replace("0001.png 1", "0001.png -1") for line in class_lines(ds)])
    report = check(ds)
    assert error_codes(report) == ["class-id-negative", "class-no-entry"]
    assert "line 3" in report.errors[0].message


def test_character_id_not_a_number(ds):
    write_class_lines(ds, [line.replace("0001.png 1", "0001.png one") for line in class_lines(ds)])
    report = check(ds)
    assert error_codes(report) == ["class-id-nan", "class-no-entry"]
    assert "'one'" in report.errors[0].message


def test_class_line_without_id(ds):
    write_class_lines(ds, [*class_lines(ds), "lonely.png"])
    assert "line 16" in the_error(check(ds), "class-line").message


def test_same_name_with_two_ids(ds):
    write_class_lines(ds, [*class_lines(ds), "train_img\\0002.png 0"])
    p = the_error(check(ds), "class-conflict")
    assert p.path == ds / "class.txt" and "line 4 says 2, line 16 says 0" in p.message


def test_class_entry_without_image_is_a_warning(ds):
    write_class_lines(ds, [*class_lines(ds), "ghost.png 1"])
    report = check(ds)
    assert (
        report.ok
        and warning_codes(report) == ["class-unused"]
        and "'ghost.png'" in report.warnings[0].message
    )


def test_many_warnings_of_one_kind_are_shortened(ds):
    write_class_lines(ds, [*class_lines(ds), *(f"ghost{i}.png 1" for i in range(25))])
    text = check(ds).format()
    assert text.count("matches no image") == 20 and "... and 5 more 'class-unused' warnings" in text


def test_extension_mismatch_matches_loosely(ds):
    write_class_lines(ds, [line.replace("0001.png", "0001.jpg") for line in class_lines(ds)])
    report = check(ds)
    assert report.ok and warning_codes(report) == ["class-loose"]


def test_empty_train_split(tmp_path):
    root = write_tiny_dataset(tmp_path / "ds", n_train=0)
    p = the_error(check(root), "split-empty")
    assert p.path == root / "train_img"
    assert check(root, need=("test",)).ok


def test_absurdly_large_image_is_refused_unread(ds):
    path = ds / "train_img" / "0000.png"
    png_header(path, 9000, 9000)  # 81 M pixels: over our 67 M limit, under PIL's own
    p = the_error(check(ds), "too-large")
    assert p.path == path and "9000x9000" in p.message
    png_header(path, 100_000, 100_000)  # PIL refuses this one itself
    assert the_error(check(ds), "too-large").path == path
    assert error_codes(check(ds, max_pixels=100)).count("too-large") == 14 * 3


def test_transparent_image_is_a_warning(ds):
    path = ds / "train_img" / "0000.png"
    rgba = np.asarray(Image.open(path).convert("RGBA")).copy()
    rgba[:4, :4, 3] = 0
    Image.fromarray(rgba).save(path)
    report = check(ds)
    assert (
        report.ok
        and warning_codes(report) == ["image-alpha"]
        and "16 transparent" in report.warnings[0].message
    )


def test_same_picture_in_two_splits_is_a_warning(ds):
    (ds / "test_img" / "0011.png").write_bytes((ds / "train_img" / "0002.png").read_bytes())
    report = check(ds)
    assert report.ok and warning_codes(report) == ["split-overlap"]
    assert report.warnings[0].path == ds / "test_img" / "0011.png"


def test_same_name_in_two_splits_is_a_warning(ds):
    for kind in ("img", "label", "edge"):
        (ds / f"test_{kind}" / "0010.png").rename(ds / f"test_{kind}" / "0001.png")
    write_class_lines(ds, [line for line in class_lines(ds) if not line.startswith("0010.png")])
    report = check(ds)
    assert report.ok and warning_codes(report) == ["name-in-two-splits"]


def test_stray_files_are_ignored_with_a_warning(ds):
    (ds / "train_img" / "notes.txt").write_text("hello")
    (ds / "train_img" / ".DS_Store").write_bytes(b"\0")
    report = check(ds)
    assert report.ok and warning_codes(report) == ["stray-file"]


def test_bad_palette_json(ds):
    (ds / "palette.json").write_text('{"classes": [{"name": "a", "color": [1, 2]}]}')
    report = check(ds)
    p = the_error(report, "palette")
    assert p.path == ds / "palette.json" and report.info is None


def test_bad_cast_json(ds):
    (ds / "cast.json").write_text('{"characters": [{"id": "zero", "name": "A"}]}')
    assert the_error(check(ds), "cast").path == ds / "cast.json"


def test_missing_root(tmp_path):
    report = check(tmp_path / "nowhere")
    assert error_codes(report) == ["no-root"] and report.info is None


# --- how training and the CLI see it -------------------------------------------------------------


def test_load_dataset_raises_with_every_error(ds):
    (ds / "train_img" / "0001.png").write_bytes(b"junk")
    (ds / "train_label" / "0004.png").unlink()
    with pytest.raises(DatasetError) as e:
        load_dataset(ds, workers=1)
    text = str(e.value)
    assert "2 error(s)" in text and "train_img/0001.png" in text and "train_img/0004.png" in text
    assert e.value.report is not None and len(e.value.report.errors) == 2


def test_load_dataset_returns_the_info(ds):
    info = load_dataset(ds, num_characters=3, workers=1)
    assert info.num_characters == 3 and len(info.splits["test"]) == 4


def test_main_check_exit_codes(ds, capsys):
    assert main_check(ds) == 0
    assert "dataset OK" in capsys.readouterr().out
    (ds / "train_img" / "0001.png").write_bytes(b"junk")
    assert main_check(ds, None, 9, 1) == 1
    out = capsys.readouterr()
    assert "train_img/0001.png" in out.out and "Traceback" not in out.out + out.err
