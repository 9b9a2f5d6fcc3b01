"""The paint app over HTTP (Starlette's TestClient), with a tiny untrained generator.

Pictures are checked against what the same Painter paints for the same inputs, so "the colours
follow the character" means: the served picture is that character's painting, not another's.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from starlette.testclient import TestClient

from animesis.app import create_app
from animesis.app.server import STATIC_DIR, bind_socket, is_loopback
from animesis.app.untrained import save_untrained_model
from animesis.commands.paint import PaintArgs, load_engine, run_paint
from animesis.errors import UserError
from animesis.inference import Painter

SIZE = (32, 32)
K = 3


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_untrained_model(tmp_path_factory.mktemp("model"), size=SIZE, num_characters=K)


@pytest.fixture(scope="module")
def painter(model_dir) -> Painter:
    return Painter.load(model_dir, device="cpu")


@pytest.fixture(scope="module")
def client(painter) -> TestClient:
    return TestClient(create_app(painter))


@pytest.fixture(scope="module")
def face(client) -> np.ndarray:
    """A drawn face from the shipped examples, at the model size."""
    return unpack(client.get("/api/examples/face-1").json()["label"])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unpack(text: str, size: tuple[int, int] = SIZE) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), np.uint8).reshape(size).copy()


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def picture(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def expected(painter: Painter, label: np.ndarray, characters, seed: int) -> np.ndarray:
    return painter.paint(label[None], characters, painter.noise(1, seed))[0]


def error_of(response) -> str:
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    assert message and "\n" not in message and "Traceback" not in message
    return message


# --- model info and examples -----------------------------------------------------------------------


def test_model_info_lists_classes_characters_and_swatches(client, painter):
    info = client.get("/api/model").json()
    palette = painter.card.palette
    assert [c["name"] for c in info["classes"]] == list(palette.names)
    assert [tuple(c["color"]) for c in info["classes"]] == list(palette.colors)
    assert info["background"] == palette.index("background")
    assert [c["name"] for c in info["characters"]] == list(painter.card.character_names)
    assert info["size"] == list(SIZE) and info["z"] is True
    # The swatch is the mean hair colour of each character painting the blank face with seed 0.
    blank = unpack(client.get("/api/examples/blank").json()["label"])
    hair = blank == palette.index("hair")
    assert hair.any()
    for c in info["characters"]:
        want = expected(painter, blank, [c["id"]], 0)[hair].mean(axis=0)
        assert np.abs(np.array(c["swatch"]) - want).max() <= 0.5
    assert len({tuple(c["swatch"]) for c in info["characters"]}) == K


def test_examples_list_blank_first_and_serve_maps_at_model_size(client, painter):
    names = [e["name"] for e in client.get("/api/examples").json()["examples"]]
    assert names[0] == "blank" and len(names) >= 5
    shipped = Path(STATIC_DIR).parent / "examples"
    for name in names:
        body = client.get(f"/api/examples/{name}").json()
        assert body["size"] == list(SIZE)
        with Image.open(shipped / f"{name}.png") as img:
            assert img.size == (128, 128) and (shipped / f"{name}.png").stat().st_size < 10_000
            want = painter.resize_label(np.asarray(img))
        np.testing.assert_array_equal(unpack(body["label"]), want)


# --- painting --------------------------------------------------------------------------------------


def test_paint_returns_a_png_of_the_model_size_painted_by_the_model(client, painter, face):
    img = picture(client.post("/api/paint", json={"label": b64(face.tobytes()), "character": 1, "seed": 7}))
    assert img.shape == (*SIZE, 3)
    np.testing.assert_array_equal(img, expected(painter, face, [1], 7))


def test_label_png_of_any_size_is_resized_to_the_model(client, painter, face):
    big = np.kron(face, np.ones((4, 4), np.uint8))  # 128x128
    img = picture(client.post("/api/paint", json={"label_png": b64(png(big)), "character": 0, "seed": 1}))
    np.testing.assert_array_equal(img, expected(painter, np.array(painter.resize_label(big)), [0], 1))


def test_changing_the_character_changes_the_picture_to_that_characters(client, painter, face):
    pics = [
        picture(client.post("/api/paint", json={"label": b64(face.tobytes()), "character": c, "seed": 3}))
        for c in range(K)
    ]
    for c in range(K):
        np.testing.assert_array_equal(pics[c], expected(painter, face, [c], 3))
    for a in range(K):
        for b in range(a + 1, K):
            assert np.abs(pics[a].astype(int) - pics[b]).mean() > 5  # visibly different pictures


def test_region_mixing_paints_each_region_as_its_owner(client, painter, face):
    owner = np.zeros(SIZE, np.uint8)
    owner[:, SIZE[1] // 2 :] = 2
    body = {"label": b64(face.tobytes()), "owner": b64(owner.tobytes()), "seed": 5}
    mix = picture(client.post("/api/paint", json=body)).astype(int)
    np.testing.assert_array_equal(
        mix, expected(painter, face, torch.as_tensor(owner[None].astype(np.int64)), 5)
    )
    alone = [expected(painter, face, [c], 5).astype(int) for c in (0, 2)]
    left, right = slice(0, SIZE[1] // 4), slice(3 * SIZE[1] // 4, None)
    # Far from the seam each side looks like its own character and not like the other one.
    assert np.abs(mix[:, left] - alone[0][:, left]).mean() < np.abs(mix[:, left] - alone[1][:, left]).mean()
    assert (
        np.abs(mix[:, right] - alone[1][:, right]).mean() < np.abs(mix[:, right] - alone[0][:, right]).mean()
    )
    # The same owner map sent as an index PNG of another size paints the same picture.
    big = np.kron(owner, np.ones((2, 2), np.uint8))
    body = {"label": b64(face.tobytes()), "owner_png": b64(png(big)), "seed": 5}
    np.testing.assert_array_equal(picture(client.post("/api/paint", json=body)), mix)


def test_interpolation_runs_from_one_character_to_the_other(client, painter, face):
    def blend(t: float) -> np.ndarray:
        body = {"label": b64(face.tobytes()), "blend": [0, 2, t], "seed": 4}
        return picture(client.post("/api/paint", json=body)).astype(int)

    ends = [expected(painter, face, [c], 4).astype(int) for c in (0, 2)]
    assert np.abs(blend(0.0) - ends[0]).max() <= 1
    assert np.abs(blend(1.0) - ends[1]).max() <= 1
    half = blend(0.5)
    weights = torch.tensor([[0.5, 0.0, 0.5]])
    np.testing.assert_array_equal(half, expected(painter, face, weights, 4))
    assert all(np.abs(half - end).mean() > 1 for end in ends)


# --- onnxruntime as the engine ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def beside(model_dir, tmp_path_factory) -> Path:
    """A copy of the model with its graph exported beside the weights, as `animesis export` writes it."""
    import shutil

    from animesis.export import BESIDE_WEIGHTS, export_onnx

    folder = tmp_path_factory.mktemp("beside") / "model"
    shutil.copytree(model_dir, folder)
    export_onnx(Painter.load(folder, device="cpu"), folder / BESIDE_WEIGHTS)
    return folder


def test_onnxruntime_paints_what_torch_paints_for_every_request(beside, face):
    painter = Painter.load(beside, device="cpu")
    engine, name = load_engine(painter, "auto")
    assert name.startswith("onnxruntime") and engine is not None
    onnx_client = TestClient(create_app(painter, engine=engine))
    assert onnx_client.get("/api/model").json()["engine"] == "onnxruntime"
    owner = np.zeros(SIZE, np.uint8)
    owner[:, SIZE[1] // 2 :] = 2
    requests = [  # one character, region mixing, interpolation
        ({"character": 1}, [1]),
        ({"owner": b64(owner.tobytes())}, torch.as_tensor(owner[None].astype(np.int64))),
        ({"blend": [0, 2, 0.25]}, torch.tensor([[0.75, 0.0, 0.25]])),
    ]
    for extra, characters in requests:
        body = {"label": b64(face.tobytes()), "seed": 6, **extra}
        got = picture(onnx_client.post("/api/paint", json=body)).astype(int)
        want = expected(painter, face, characters, 6).astype(int)
        assert np.abs(got - want).max() <= 1, extra  # rounding at a .5 boundary at most
        assert got.std() > 1  # a picture, not a blank


def test_the_engine_is_onnxruntime_only_for_a_graph_of_these_weights(beside, model_dir, tmp_path):
    from animesis.export import BESIDE_WEIGHTS

    assert load_engine(Painter.load(beside, device="cpu"), "torch") == (None, "torch")
    engine, name = load_engine(Painter.load(model_dir, device="cpu"), "auto")
    assert engine is None and "does not exist" in name and "animesis export --onnx" in name
    stale = tmp_path / "stale"
    save_untrained_model(stale, size=SIZE, num_characters=K, seed=1)  # other weights, the old graph
    (stale / BESIDE_WEIGHTS).write_bytes((beside / BESIDE_WEIGHTS).read_bytes())
    engine, name = load_engine(Painter.load(stale, device="cpu"), "auto")
    assert engine is None and "is not from these weights" in name
    engine, name = load_engine(Painter.load(stale, device="cpu"), "onnx")  # exports a fresh graph
    assert engine is not None and name.endswith("exported now)")


def test_variations_are_the_next_seeds_and_differ(client, face):
    body = {"label": b64(face.tobytes()), "character": 1, "seed": 10, "n": 4}
    r = client.post("/api/variations", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["seeds"] == [11, 12, 13, 14]
    pics = [np.asarray(Image.open(io.BytesIO(base64.b64decode(p)))).astype(int) for p in r.json()["images"]]
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(pics[i] - pics[j]).mean() > 1
    single = picture(client.post("/api/paint", json={**body, "seed": 12}))
    assert np.abs(pics[1] - single).max() <= 1  # a variation is its seed's picture
    assert "8" in error_of(client.post("/api/variations", json={**body, "n": 9}))


def test_encode_returns_the_map_as_an_index_png(client, face):
    r = client.post("/api/encode", json={"label": b64(face.tobytes())})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    assert img.mode == "L"
    np.testing.assert_array_equal(np.asarray(img), face)


# --- opening label files ---------------------------------------------------------------------------


def test_open_label_reads_index_and_palette_colour_pngs(client, painter, face):
    big = np.kron(face, np.ones((3, 3), np.uint8))  # 96x96
    for data in (png(big), png(painter.card.palette.colorize(big))):
        r = client.post("/api/label?name=face.png", content=data)
        assert r.status_code == 200, r.text
        assert r.json()["source_size"] == [96, 96]
        np.testing.assert_array_equal(unpack(r.json()["label"]), face)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def grey_png(width: int, height: int, idat: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunks = png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def bomb_header_only(width: int, height: int) -> bytes:
    """A PNG whose header asks for width x height pixels, with almost no data behind it."""
    return grey_png(width, height, zlib.compress(b"\0" * 64))


def bomb_real(side: int) -> bytes:
    """A valid greyscale PNG of side x side zeros: kilobytes that decode to side**2 bytes."""
    return grey_png(side, side, zlib.compress((b"\0" + b"\0" * side) * side, 9))


def test_bad_uploads_are_refused_with_a_message(client, painter, face):
    def upload(data: bytes, name: str = "map.png") -> str:
        return error_of(client.post(f"/api/label?name={name}", content=data))

    assert "not a PNG" in upload(b"just some text, not a picture", "notes.txt")
    assert "not a PNG" in upload(b"\xff\xd8\xff\xe0" + b"\0" * 100)  # a JPEG signature
    assert "refused unread" in upload(bomb_header_only(100_000, 100_000))
    real = bomb_real(5000)  # 25 M pixels in about 25 kB
    assert len(real) < 100_000
    assert "25000000 pixels" in upload(real)
    assert "corrupt or truncated" in upload(png(face)[:-30])
    rgb = painter.card.palette.colorize(face)
    rgb[0, 0] = (1, 2, 3)
    assert "(1, 2, 3)" in upload(png(rgb)) and "palette" in upload(png(rgb))
    wrong = face.copy()
    wrong[5, 5] = painter.num_classes
    message = upload(png(wrong))
    assert f"values {painter.num_classes} " in message and f"0..{painter.num_classes - 1}" in message
    assert upload(b"x", "../../secret/a.png").startswith("a.png:")  # the name is only echoed, shortened


def test_uploads_over_the_caps_are_refused(painter, face):
    small = TestClient(create_app(painter, max_upload_bytes=2000, max_pixels=64 * 64))
    noise = np.random.default_rng(0).integers(0, painter.num_classes, (64, 64), dtype=np.uint8)
    data = png(noise)
    assert len(data) > 2000
    assert "limit of 2000 bytes" in error_of(small.post("/api/label", content=data))
    assert "4096" in error_of(small.post("/api/label", content=png(np.zeros((65, 65), np.uint8))))
    body = {"label_png": b64(data), "character": 0}
    assert "limit of 2000 bytes" in error_of(small.post("/api/paint", json=body))
    huge = {"label": "A" * 20_000, "character": 0}
    assert "limit" in error_of(small.post("/api/paint", json=huge))


def test_bad_paint_requests_are_refused_with_a_message(client, painter, face):
    label = b64(face.tobytes())

    def paint(**body) -> str:
        return error_of(client.post("/api/paint", json=body))

    assert "32x32" in paint(label=b64(face.tobytes()[:-1]), character=0)
    too_high = face.copy()
    too_high[0, 0] = 200
    assert "values 200" in paint(label=b64(too_high.tobytes()), character=0)
    assert "base64" in paint(label="not base64!", character=0)
    assert "missing label" in paint(character=0)
    assert "character" in paint(label=label, character=K)
    assert "character" in paint(label=label, character="1")
    assert "exactly one" in paint(label=label, character=0, blend=[0, 1, 0.5])
    assert "blend t" in paint(label=label, blend=[0, 1, 1.5])
    owner = np.full(SIZE, K, np.uint8)
    assert "characters 0..2" in paint(label=label, owner=b64(owner.tobytes()))
    assert "seed" in paint(label=label, character=0, seed=-1)
    assert "JSON" in error_of(client.post("/api/paint", content=b"{not json"))


# --- no paths from requests ------------------------------------------------------------------------


def test_requests_cannot_name_files(client):
    probes = [
        "/api/examples/..%2Fserver.py",
        "/api/examples/../server.py",
        "/api/examples/%2e%2e%2fserver",
        "/api/examples/blank.png",
        "/api/examples/..",
        "/static/../server.py",
        "/app.js/../../server.py",
        "/..%2Fserver.py",
        "/server.py",
        "/examples/blank.png",
        "/%2e%2e/%2e%2e/pyproject.toml",
    ]
    for probe in probes:
        r = client.get(probe)
        assert r.status_code in (400, 404), probe
        assert "def create_app" not in r.text and "[project]" not in r.text
    assert client.get("/app.js").text == (Path(STATIC_DIR) / "app.js").read_text()


def test_page_is_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and "<canvas" in r.text and 'src="/app.js"' in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for name in ("index.html", "app.js", "app.css"):
        text = (Path(STATIC_DIR) / name).read_text()
        assert not re.search(r"https?://", text), name  # no CDN, nothing fetched from elsewhere
    css = (Path(STATIC_DIR) / "app.css").read_text()
    assert "image-rendering: pixelated" in css


# --- the command and the server process --------------------------------------------------------------


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")


def test_busy_port_is_one_clear_message():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{port}"):
            bind_socket("127.0.0.1", port)


def test_run_paint_without_checkpoint_uses_the_one_default_place(monkeypatch):
    calls = []

    def fake_default(device: str = "cpu"):
        calls.append(device)
        raise UserError("stop here")

    monkeypatch.setattr(Painter, "load_default", fake_default, raising=False)
    with pytest.raises(UserError, match="stop here"):
        run_paint(PaintArgs(checkpoint=None, device="cpu"))
    assert calls == ["cpu"]


def test_run_paint_refuses_bad_arguments(tmp_path):
    with pytest.raises(UserError, match="--port"):
        run_paint(PaintArgs(checkpoint=str(tmp_path), port=70000))


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_module_serves_until_ctrl_c_and_stops_cleanly(model_dir):
    cmd = [
        sys.executable,
        "-m",
        "animesis",
        "paint",
        "--checkpoint",
        str(model_dir),
        "--port",
        "0",
        "--device",
        "cpu",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, line + proc.stderr.read()
        with urllib.request.urlopen(url.group(0) + "api/model", timeout=30) as r:
            assert json.loads(r.read())["size"] == list(SIZE)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err and "warning" not in err


def test_module_reports_a_missing_model_in_one_line(tmp_path):
    cmd = [sys.executable, "-m", "animesis", "paint", "--checkpoint", str(tmp_path / "nope"), "--port", "0"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "nope" in r.stderr and "Traceback" not in r.stderr


def test_the_built_in_model_ships_a_current_graph_and_the_app_paints_with_it():
    from animesis.export import BESIDE_WEIGHTS, is_current
    from animesis.inference import SHIPPED

    painter = Painter.load_default(device="cpu")
    assert is_current(SHIPPED / BESIDE_WEIGHTS, painter.weights)
    engine, name = load_engine(painter, "auto")
    assert engine is not None and name.startswith("onnxruntime")
    assert sum(f.stat().st_size for f in SHIPPED.iterdir()) <= 25 * 2**20  # what the package may carry
    label = painter.resize_label(np.full((8, 8), painter.card.palette.index("background"), np.uint8))
    z = painter.noise(1, 0)
    assert (
        np.abs(engine.paint(label[None], [3], z).astype(int) - painter.paint(label[None], [3], z)).max() <= 1
    )
