"""Faults a user can reach end in one line and exit code 2, never a traceback, and never lose work;
a resume continues the saved run or refuses."""

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datagen import write_tiny_dataset

from animesis import runs
from animesis.cli import main, training_size
from animesis.data.palette import DEFAULT_PALETTE
from animesis.files import SaveError, ensure_writable_dir, write_text

TINY = ["--preset", "tiny", "--crop_size", "32", "--gpu_ids", "-1", "--no_progress", "--freq_fid", "0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "d", n_train=6, n_val=0, n_test=2)


def train(data, ck, *extra, steps=2):
    argv = ["train", "--name", "run", "--dataroot", str(data), "--checkpoints_dir", str(ck), *TINY]
    return main([*argv, "--max_steps", str(steps), "--freq_save_latest", "2", "--freq_print", "2", *extra])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:") or "error: argument" in line]
    assert errors, err
    assert not any("Traceback" in line for line in err)
    return errors[-1]


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    ck = tmp_path_factory.mktemp("ck")
    assert train(data, ck, "--freq_save_ckpt", "2", steps=4) == 0
    return ck


@pytest.mark.parametrize(
    "flag, value, key",
    [
        ("--batch_size", "2", "batch_size"),
        ("--seed", "7", "seed"),
        ("--crop_size", "64", "image_size"),
        ("--lr_g", "5e-4", "lr_g"),
        ("--no_EMA", None, "use_ema"),
    ],
)
def test_resume_refuses_a_change_it_cannot_honour(data, trained, tmp_path, capsys, flag, value, key):
    before = (trained / "run" / "run.json").read_text()
    extra = [flag] if value is None else [flag, value]
    assert train(data, trained, "--continue_train", *extra, steps=6) == 2
    line = one_error_line(capsys)
    assert key in line and "saved" in line and "--name" in line
    assert (trained / "run" / "run.json").read_text() == before  # nothing changed on disk
    assert runs.read_pointer(trained / "run", "latest") == 4


def test_resume_applies_safe_changes_and_keeps_a_history(data, tmp_path, capsys):
    ck = tmp_path / "ck"
    assert train(data, ck, "--batch_size", "2", steps=2) == 0
    # Flags left out keep their saved values (batch size 2); more steps and another print frequency apply.
    assert train(data, ck, "--continue_train", "--freq_print", "1", steps=4) == 0
    out = capsys.readouterr().out
    assert "resume: changed max_steps: 2 -> 4" in out and "freq_print: 2 -> 1" in out
    saved = json.loads((ck / "run" / "run.json").read_text())
    assert saved["batch_size"] == 2 and saved["max_steps"] == 4
    history = [json.loads(line) for line in (ck / "run" / "history.jsonl").read_text().splitlines()]
    assert [h["event"] for h in history] == ["start", "resume"]
    assert history[1]["step"] == 2 and any("max_steps" in c for c in history[1]["changes"])
    state = json.loads((ck / "run" / "models" / "4" / "training_state.json").read_text())
    assert state["batch_size"] == 2


def test_a_run_saved_before_the_colour_term_resumes_without_it(data, tmp_path, capsys):
    """The default recipe's region-colour term and its noise on the background alone came later than
    some runs: a run.json without them resumes as it was trained (weight 0, noise on every pixel, its
    own mode-seeking weight), not with the recipe of today."""
    ck = tmp_path / "ck"
    assert train(data, ck, steps=2) == 0
    run_json = ck / "run" / "run.json"
    saved = json.loads(run_json.read_text())
    assert saved["loss"].pop("lambda_colour_sw") == 20.0  # today's `paired`
    assert saved["generator"].pop("noise_classes") == [DEFAULT_PALETTE.names.index("background")]
    assert saved["loss"]["lambda_ms"] == 2.0
    saved["loss"]["lambda_ms"] = 1.0  # the recipe's weight before
    run_json.write_text(json.dumps(saved))
    assert train(data, ck, "--continue_train", steps=4) == 0
    changes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("resume: changed")]
    assert changes and not any(k in line for line in changes for k in ("colour", "noise", "lambda_ms"))
    resumed = json.loads(run_json.read_text())
    assert resumed["loss"]["lambda_colour_sw"] == 0.0 and resumed["generator"]["noise_classes"] == []
    assert resumed["loss"]["lambda_ms"] == 1.0


def test_resuming_before_later_checkpoints_is_refused(data, trained, capsys):
    assert runs.list_checkpoints(trained / "run") == [2, 4]
    assert train(data, trained, "--continue_train", "--which_iter", "2", steps=6) == 2
    line = one_error_line(capsys)
    assert "later checkpoints (4)" in line and "--name NEW" in line
    assert runs.list_checkpoints(trained / "run") == [2, 4]


def test_a_second_run_with_the_same_name_is_refused(data, tmp_path, capsys):
    ck = tmp_path / "ck"
    (ck / "run").mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = {"pid": holder.pid, "host": socket.gethostname(), "since": "now"}
        (ck / "run" / "lock").write_text(json.dumps(lock))
        assert train(data, ck, steps=2) == 2
        assert f"PID {holder.pid}" in one_error_line(capsys)
        assert runs.list_checkpoints(ck / "run") == []
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone: its lock is stale and the next run takes it over, then releases it.
    assert train(data, ck, steps=2) == 0
    assert "taking over the lock" in capsys.readouterr().err
    assert not (ck / "run" / "lock").exists() and runs.list_checkpoints(ck / "run") == [2]


def test_damaged_resume_state_is_one_line(data, tmp_path, capsys):
    ck = tmp_path / "ck"
    assert train(data, ck, steps=2) == 0
    folder = ck / "run" / "models" / "2"
    state = folder / "training_state.json"
    good = state.read_text()
    state.write_text("{ not json")
    assert train(data, ck, "--continue_train", steps=4) == 2
    assert "training_state.json" in one_error_line(capsys)
    state.write_text(good)
    tensors = folder / "training_state.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:100])
    assert train(data, ck, "--continue_train", steps=4) == 2
    assert "training_state.safetensors" in one_error_line(capsys)


def _parameters(folder: Path, name: str) -> dict:
    """Trained tensors only: BatchNorm statistics and spectral-norm vectors move in any forward pass."""
    from safetensors.torch import load_file

    buffers = ("running_", "num_batches_tracked", "._u", "._v")
    return {k: v for k, v in load_file(str(folder / name)).items() if not any(b in k for b in buffers)}


def test_a_new_run_starts_from_another_runs_weights_at_another_size(data, trained, tmp_path, capsys):
    source = trained / "run" / "models" / "2"
    ck = tmp_path / "ck"
    # A learning rate near zero: one step leaves the weights where --init_from put them.
    args = ["--init_from", str(trained / "run"), "--init_iter", "2", "--lr_g", "1e-12", "--lr_d", "1e-12"]
    assert train(data, ck, *args, "--crop_size", "64", steps=1) == 0
    assert f"started from the weights in {source}" in capsys.readouterr().out
    run = ck / "run"
    assert json.loads((run / "run.json").read_text())["init_from"] == str(source)
    new = run / "models" / "1"
    assert json.loads((new / "config.json").read_text())["image_size"] == [64, 64]
    for name in ("generator.safetensors", "discriminator.safetensors"):
        a, b = _parameters(source, name), _parameters(new, name)
        assert a.keys() == b.keys() and len(a) > 10
        assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a), name
    # The same command again with --continue_train resumes it (the run folder resolves to the saved
    # iteration folder); another starting point is refused.
    assert train(data, ck, *args, "--crop_size", "64", "--continue_train", steps=2) == 0
    assert (run / "models" / "2").is_dir()
    other = ["--init_from", str(trained / "run"), "--init_iter", "4", "--lr_g", "1e-12", "--lr_d", "1e-12"]
    assert train(data, ck, *other, "--crop_size", "64", "--continue_train", steps=3) == 2
    assert "cannot change init_from" in one_error_line(capsys)
    # Without --init_from the same run starts elsewhere: the check above can fail.
    assert train(data, tmp_path / "fresh", "--lr_g", "1e-12", "--lr_d", "1e-12", steps=1) == 0
    fresh = _parameters(tmp_path / "fresh" / "run" / "models" / "1", "generator.safetensors")
    a = _parameters(source, "generator.safetensors")
    assert not all(torch.allclose(fresh[k], a[k], atol=1e-6) for k in a)


def test_init_from_a_different_model_is_one_line(data, trained, tmp_path, capsys):
    assert train(data, tmp_path / "ck", "--init_from", str(trained / "run"), "--preset", "small") == 2
    line = one_error_line(capsys)
    assert "--init_from" in line and "generator differs" in line and "base_channels: 8 there, 16 here" in line
    assert not (tmp_path / "ck" / "run" / "models").exists()


def test_a_missing_latest_pointer_falls_back_to_the_newest_checkpoint(data, tmp_path, capsys):
    ck = tmp_path / "ck"
    assert train(data, ck, "--freq_save_ckpt", "2", steps=4) == 0
    (ck / "run" / "models" / "latest.txt").unlink()
    assert runs.resolve_checkpoint(ck / "run", "latest").name == "4"
    assert "latest.txt is missing: using the newest checkpoint, 4" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "--name", "x", "--dataroot", "d", "--batch_size", "0"], "--batch_size"),
        (["train", "--name", "x", "--dataroot", "d", "--seed", "99999999999999999999999"], "--seed"),
        (["train", "--name", "x", "--dataroot", "d", "--lr_g", "-1"], "--lr_g"),
        (["generate", "--label", "l.png", "--character", "0", "--out", "o", "--n", "0"], "--n"),
        (["dataset", "synth", "--out", "o", "--size", "-3"], "--size"),
    ],
)
def test_bad_numbers_are_refused_by_the_parser(argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert words in one_error_line(capsys)


def test_output_paths_are_checked_before_the_work(data, trained, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    label = next((data / "test_label").iterdir())
    gen = ["generate", "--checkpoint", str(trained / "run"), "--label", str(label), "--character", "0"]
    assert main([*gen, "--out", str(a_file)]) == 2
    assert "output folder must be a folder" in one_error_line(capsys)
    assert a_file.read_text() == "mine"
    assert main([*gen, "--out", str(tmp_path / "o"), "--device", "cuda"]) == 2  # no GPU here
    assert "--device cuda" in one_error_line(capsys)
    test = [
        "test",
        "--name",
        "run",
        "--dataroot",
        str(data),
        "--checkpoints_dir",
        str(trained),
        "--gpu_ids",
        "-1",
    ]
    assert main([*test, "--results_dir", str(a_file)]) == 2
    assert "results folder" in one_error_line(capsys)


def test_generate_paints_in_batches_with_the_same_pictures(data, trained, tmp_path):
    label = next((data / "test_label").iterdir())
    gen = [
        "generate",
        "--checkpoint",
        str(trained / "run"),
        "--label",
        str(label),
        "--character",
        "1",
        "--n",
        "5",
    ]
    assert main([*gen, "--out", str(tmp_path / "a"), "--batch_size", "2"]) == 0
    assert main([*gen, "--out", str(tmp_path / "b"), "--batch_size", "16"]) == 0
    a = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(a) == 5 and a == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in a:  # the batch size changes nothing in the pictures
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_files_follow_the_umask_and_failures_keep_the_old_file(tmp_path, monkeypatch):
    old = os.umask(0o022)
    try:
        target = tmp_path / "x.txt"
        write_text(target, "one")
        assert stat.S_IMODE(target.stat().st_mode) == 0o644
    finally:
        os.umask(old)

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(SaveError, match="no space left"):
        write_text(target, "two")
    monkeypatch.undo()
    assert target.read_text() == "one" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]
    with pytest.raises(SaveError, match="must be a folder"):
        ensure_writable_dir(target, "output folder")


def test_version_and_help_show_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("animesis ")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines at the terminal's width
    assert "(default: 0.999)" in text and "(default: 42)" in text and "(default: paired)" in text
    assert "(default: None)" not in text  # such flags say what they default to


# --- non-square pictures (OASIS's --crop_size / --aspect_ratio) --------------------------------------


def test_crop_size_is_the_width():
    assert training_size(512, 2.0, 6) == (256, 512)  # OASIS's Cityscapes setting
    assert training_size(128, 4 / 3, 4) == (96, 128)
    assert training_size(128, 1.0, 4) == (128, 128)
    h, w = training_size(64, 1.7, 4)
    assert w == 64 and h % 8 == 0 and abs(w / h - 1.7) < 0.3


def test_a_4_by_3_dataset_trains_resumes_and_paints_its_shape(tmp_path, capsys):
    data = write_tiny_dataset(tmp_path / "d43", n_train=4, n_val=0, n_test=2, size=(24, 32))
    ck, res = tmp_path / "ck", tmp_path / "res"
    base = ["train", "--name", "r", "--dataroot", str(data), "--checkpoints_dir", str(ck), "--preset", "tiny",
            "--gpu_ids", "-1", "--no_progress", "--freq_fid", "0", "--freq_print", "2", "--freq_save_latest", "2"]  # fmt: skip
    assert main([*base, "--crop_size", "32", "--max_steps", "2"]) == 0
    assert "squashed" in capsys.readouterr().err  # 32x24 pictures trained square without --aspect_ratio
    ck.rename(tmp_path / "square")
    assert main([*base, "--crop_size", "32", "--aspect_ratio", "1.3333", "--max_steps", "2"]) == 0
    out = capsys.readouterr()
    assert "training at 32x24" in out.out and "squashed" not in out.err
    assert main([*base, "--continue_train", "--max_steps", "4"]) == 0  # the saved size is kept
    assert runs.read_pointer(ck / "r", "latest") == 4
    test = ["test", "--name", "r", "--dataroot", str(data), "--checkpoints_dir", str(ck), "--gpu_ids", "-1",
            "--ckpt_iter", "latest", "--results_dir", str(res)]  # fmt: skip
    assert main(test) == 0
    from PIL import Image

    pictures = list((res / "r" / "latest" / "image").iterdir())
    assert pictures and all(Image.open(p).size == (32, 24) for p in pictures)
    label = next((data / "test_label").iterdir())
    gen = ["generate", "--checkpoint", str(ck / "r"), "--label", str(label), "--character", "0", "--n", "1"]
    assert main([*gen, "--out", str(tmp_path / "g")]) == 0
    assert Image.open(next((tmp_path / "g").iterdir())).size == (32, 24)


def test_an_exif_rotation_is_reported(tmp_path):
    from PIL import Image

    from animesis.data.layout import check_dataset

    data = write_tiny_dataset(tmp_path / "d", n_train=3, n_val=0, n_test=0)
    picture = sorted((data / "train_img").iterdir())[0]
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    Image.open(picture).save(picture, exif=exif)
    report = check_dataset(data, workers=1)
    assert report.ok
    assert [w.code for w in report.warnings if w.path == picture] == ["exif-orientation"]


def test_examples_are_written_and_never_overwritten_silently(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from animesis.data.palette import DEFAULT_PALETTE

    assert main(["examples", "--out", str(tmp_path)]) == 0
    maps = sorted(tmp_path.glob("*.png"))
    assert len(maps) >= 3 and "blank.png" in [p.name for p in maps]
    for path in maps:
        values = np.asarray(Image.open(path))
        assert values.ndim == 2 and values.max() < DEFAULT_PALETTE.num_classes and len(np.unique(values)) > 3
    maps[0].write_bytes(b"mine")
    assert main(["examples", "--out", str(tmp_path)]) == 2
    assert "--force" in one_error_line(capsys) and maps[0].read_bytes() == b"mine"
    assert main(["examples", "--out", str(tmp_path), "--force"]) == 0 and maps[0].read_bytes() != b"mine"


def test_names_pair_across_unicode_normal_forms(tmp_path):
    import unicodedata

    from animesis.data.layout import check_dataset

    data = write_tiny_dataset(tmp_path / "d", n_train=3, n_val=0, n_test=0, edges=False)
    img = sorted((data / "train_img").iterdir())[0]
    nfc = unicodedata.normalize("NFC", "café")
    img.rename(img.with_name(unicodedata.normalize("NFD", "café") + img.suffix))  # as macOS stores it
    lab = data / "train_label" / img.name
    lab.rename(lab.with_name(nfc + lab.suffix))
    lines = (data / "class.txt").read_text().splitlines()
    (data / "class.txt").write_text("\n".join(line.replace(img.stem, nfc) for line in lines) + "\n")
    report = check_dataset(data, workers=1)
    assert report.ok, report.format_errors()
    assert len(report.info.splits["train"]) == 3


def test_an_empty_class_file_is_one_error(tmp_path):
    from animesis.data.layout import check_dataset

    data = write_tiny_dataset(tmp_path / "d", n_train=3, n_val=0, n_test=2)
    (data / "class.txt").write_text("\n\n")
    report = check_dataset(data, workers=1)
    assert [e.code for e in report.errors] == ["class-empty"]


def test_the_built_in_model_paints_without_a_checkpoint(tmp_path):
    import numpy as np
    from PIL import Image

    from animesis.inference import Painter

    painter = Painter.load_default(device="cpu")
    assert painter.num_characters == 9
    assert main(["examples", "--out", str(tmp_path / "maps")]) == 0
    label = tmp_path / "maps" / "face-1.png"
    assert (
        main(
            ["generate", "--label", str(label), "--character", "0", "--n", "1", "--out", str(tmp_path / "a")]
        )
        == 0
    )
    assert (
        main(
            ["generate", "--label", str(label), "--character", "4", "--n", "1", "--out", str(tmp_path / "b")]
        )
        == 0
    )
    a = np.asarray(Image.open(next((tmp_path / "a").iterdir())))
    b = np.asarray(Image.open(next((tmp_path / "b").iterdir())))
    assert (
        a.shape == (*painter.card.image_size, 3) and np.abs(a.astype(int) - b).mean() > 5
    )  # characters differ


def test_training_says_which_arithmetic_it_uses(tmp_path, capsys, monkeypatch):
    data = write_tiny_dataset(tmp_path / "d", n_train=4, n_val=0, n_test=2)
    base = ["train", "--name", "r", "--dataroot", str(data), "--checkpoints_dir", str(tmp_path / "ck"),
            "--preset", "tiny", "--gpu_ids", "-1", "--dry_run"]  # fmt: skip
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    measured = " (bf16 measured {:.2f}x fp32's speed on this CPU)"
    for native, speedup, precision, said in [
        (True, 1.7, "fp32", "fp32"),
        (False, 1.7, "bf16", "bf16 autocast"),
        (True, 1.7, "auto", "bf16 autocast" + measured.format(1.7)),
        (True, 0.8, "auto", "fp32" + measured.format(0.8)),  # bf16 instructions, but slower: fp32
        (False, 1.7, "auto", "fp32"),
    ]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda native=native: native)
        for where in ("animesis.device.cpu_bf16_speedup", "animesis.cli.cpu_bf16_speedup"):
            monkeypatch.setattr(where, lambda speedup=speedup: speedup)
        assert main([*base, "--precision", precision]) == 0
        line = next(s for s in capsys.readouterr().out.splitlines() if s.startswith("training at"))
        assert line.endswith(f", {said}"), (native, precision, line)
