"""The torch Dataset: what an item holds, resizing, caching, workers, and errors naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from datagen import write_tiny_dataset
from PIL import Image
from torch.utils.data import DataLoader

from animesis.data.dataset import DatasetError, SegmentationDataset, read_label
from animesis.data.layout import DatasetInfo, load_dataset
from animesis.data.palette import DEFAULT_PALETTE


@pytest.fixture
def info(tmp_path: Path) -> DatasetInfo:
    return load_dataset(write_tiny_dataset(tmp_path / "ds"), workers=1)


def test_item_types_and_shapes(info):
    ds = SegmentationDataset(info.splits["train"], info.palette, (32, 32))
    item = ds[1]
    assert set(item) == {"image", "label", "edge", "character", "index"}
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.uint8
    assert item["label"].shape == (32, 32) and item["label"].dtype == torch.uint8
    assert set(item["edge"].unique().tolist()) == {0, 1} and item["edge"].dtype == torch.uint8
    assert item["character"].dtype == torch.int64 and item["character"].ndim == 0 and item["character"] == 1
    assert item["index"] == 1 and len(ds) == 8
    # At the files' own size the item is the files, unchanged.
    s = info.splits["train"][1]
    assert np.array_equal(item["image"].permute(1, 2, 0).numpy(), np.asarray(Image.open(s.image)))
    assert np.array_equal(item["label"].numpy(), np.asarray(Image.open(s.label)))


def test_no_edge_key_without_edge_files(tmp_path):
    info = load_dataset(write_tiny_dataset(tmp_path / "ds", edges=False), workers=1)
    item = SegmentationDataset(info.splits["train"], info.palette, (32, 32))[0]
    assert "edge" not in item


def test_resize_keeps_labels_exact(info):
    ds = SegmentationDataset(info.splits["train"], info.palette, (48, 20))
    item = ds[0]
    assert (
        item["image"].shape == (3, 48, 20)
        and item["label"].shape == (48, 20)
        and item["edge"].shape == (48, 20)
    )
    original = set(np.unique(np.asarray(Image.open(info.splits["train"][0].label))).tolist())
    assert set(item["label"].unique().tolist()) <= original  # nearest: no in-between class values
    assert set(item["edge"].unique().tolist()) <= {0, 1}


def test_image_resize_is_bicubic_and_label_nearest(info):
    s = info.splits["train"][0]
    item = SegmentationDataset([s], info.palette, (16, 16))[0]
    expected = np.asarray(Image.open(s.image).resize((16, 16), Image.Resampling.BICUBIC))
    assert np.array_equal(item["image"].permute(1, 2, 0).numpy(), expected)
    expected = np.asarray(Image.open(s.label).resize((16, 16), Image.Resampling.NEAREST))
    assert np.array_equal(item["label"].numpy(), expected)


def test_rgb_labels_give_the_same_items(tmp_path):
    a = load_dataset(write_tiny_dataset(tmp_path / "a"), workers=1)
    b = load_dataset(write_tiny_dataset(tmp_path / "b", label_mode="rgb"), workers=1)
    la = SegmentationDataset(a.splits["test"], a.palette, (24, 24))[2]["label"]
    lb = SegmentationDataset(b.splits["test"], b.palette, (24, 24))[2]["label"]
    assert torch.equal(la, lb)


def test_edges_0_255_read_as_0_1(info):
    s = info.splits["train"][0]
    ones = np.asarray(Image.open(s.edge))
    Image.fromarray(ones * 255).save(s.edge)
    edge = SegmentationDataset([s], info.palette, (32, 32))[0]["edge"]
    assert np.array_equal(edge.numpy(), ones)


def test_items_are_deterministic(info):
    ds = SegmentationDataset(info.splits["train"], info.palette, (32, 32))
    a, b = ds[3], ds[3]
    assert all(torch.equal(a[k], b[k]) for k in ("image", "label", "edge", "character"))


def test_cache_skips_decoding_and_is_not_shared_with_callers(info):
    samples = info.splits["train"][:2]
    ds = SegmentationDataset(samples, info.palette, (32, 32), cache=True)
    first = ds[0]
    first["image"].zero_()  # a caller writing into its batch must not reach the cache
    for s in samples:
        s.image.unlink()
    again = ds[0]
    assert again["image"].sum() > 0
    with pytest.raises(DatasetError, match="unreadable"):
        ds[1]  # never cached


def test_dataloader_with_workers(info):
    ds = SegmentationDataset(info.splits["train"], info.palette, (32, 32))
    batches = list(DataLoader(ds, batch_size=4, num_workers=2))
    assert len(batches) == 2
    b = batches[0]
    assert b["image"].shape == (4, 3, 32, 32) and b["image"].device.type == "cpu"
    assert b["character"].tolist() == [0, 1, 2, 0] and b["index"].tolist() == [0, 1, 2, 3]


def test_mixed_edge_samples_are_refused(tmp_path):
    with_edges = load_dataset(write_tiny_dataset(tmp_path / "a"), workers=1).splits["train"][:1]
    without = load_dataset(write_tiny_dataset(tmp_path / "b", edges=False), workers=1).splits["train"][:1]
    with pytest.raises(DatasetError, match="some samples have edge maps"):
        SegmentationDataset(with_edges + without, DEFAULT_PALETTE, (32, 32))


def test_corrupt_file_after_the_check_names_the_file(info):
    s = info.splits["train"][0]
    s.label.write_bytes(s.label.read_bytes()[:100])
    with pytest.raises(DatasetError, match=str(s.label.name) + ".*truncated"):
        SegmentationDataset([s], info.palette, (32, 32))[0]


def test_label_replaced_by_another_size_after_the_check(info):
    s = info.splits["train"][0]
    Image.open(s.label).resize((16, 16)).save(s.label)
    with pytest.raises(DatasetError, match="differs from its image"):
        SegmentationDataset([s], info.palette, (32, 32))[0]


def test_read_label_index_and_rgb(tmp_path):
    index = np.arange(11, dtype=np.uint8).repeat(3).reshape(3, 11)
    Image.fromarray(index).save(tmp_path / "index.png")
    Image.fromarray(DEFAULT_PALETTE.colorize(index)).save(tmp_path / "rgb.png")
    assert np.array_equal(read_label(tmp_path / "index.png", DEFAULT_PALETTE), index)
    assert np.array_equal(read_label(tmp_path / "rgb.png", DEFAULT_PALETTE), index)


def test_read_label_errors_name_the_file(tmp_path):
    path = tmp_path / "drawing.png"
    Image.fromarray(np.full((4, 4, 3), 7, np.uint8)).save(path)
    with pytest.raises(DatasetError) as e:
        read_label(path, DEFAULT_PALETTE)
    assert str(e.value).startswith(str(path)) and "16 pixels" in str(e.value)
    Image.fromarray(np.full((4, 4), 11, np.uint8)).save(path)
    with pytest.raises(DatasetError, match=r"label values 11 are not classes 0\.\.10"):
        read_label(path, DEFAULT_PALETTE)


def test_error_in_a_loader_worker_stays_a_dataset_error(info):
    s = info.splits["train"][0]
    s.image.write_bytes(b"junk")
    ds = SegmentationDataset([s], info.palette, (32, 32))
    with pytest.raises(DatasetError, match=r"0000\.png"):
        next(iter(DataLoader(ds, num_workers=1)))
