"""Issue 27, images, `m2dino predict` and `m2dino demo`: bombs refused before decoding by every reader, a bad file
in a batch reported while the good ones are written, CLI sizes, ports and devices checked by flag, demo uploads
bounded and their errors shown, EXIF orientation on the predict paths only, palette transparency named."""

import json
import os
import struct
import warnings
import zlib
from io import BytesIO

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from m2dino import M2DINO, M2DINOConfig
from m2dino.cli.device import resolve_device
from m2dino.cli.main import main
from m2dino.data.adapters import mmotu
from m2dino.data.errors import DataError
from m2dino.data.mask_io import image_size, read_mask
from m2dino.data.unlabeled import _hf_image
from m2dino.image.io import ImageFormatError, ImageTooLargeError, open_image, read_image, to_rgb_uint8
from m2dino.limits import LimitError
from m2dino.visualize.writer import check_panel_size

TASKS = ["fetal_head", "fetal_plane_cls"]


def declared_png(path, width: int = 12000, height: int = 12000) -> None:
    """A gray PNG of ``width`` × ``height`` zeros, compressed row by row: ~140 KB on disk for 12,000², never
    held in memory here (the file a probe used to push `m2dino predict` to 6.7 GB)."""
    compressor, parts = zlib.compressobj(9), []
    row = bytes(width + 1)  # filter byte + samples
    for _ in range(height):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts))
                     + chunk(b"IEND", b""))


@pytest.fixture
def bomb(tmp_path):
    path = tmp_path / "bomb.png"
    declared_png(path)
    assert path.stat().st_size < 200_000
    return path


@pytest.fixture
def no_decoding(monkeypatch):
    """Any pixel decoding fails the test: refusals must come from the header."""
    def load(self):
        raise AssertionError(f"{self} was decoded")
    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = M2DINO(M2DINOConfig(backbone="test", tasks=TASKS, moe_blocks=(3,), num_experts=2, top_k=1,
                                decoder_features=8, image_size=32))
    folder = tmp_path_factory.mktemp("model")
    model.save_pretrained(folder)
    return folder


def scan(path, size=(40, 30)) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, size[::-1], dtype=np.uint8)).save(path)


# 1. a bomb is refused before decoding by every image reader on these paths


@pytest.mark.parametrize("reader", [read_image, to_rgb_uint8, read_mask, image_size,
                                    lambda p: open_image(p, p)])
def test_a_bomb_is_refused_from_its_header_by_every_reader(bomb, no_decoding, reader):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=r"bomb.png: 12000×12000 image \(144,000,000 pixels\) exceeds m2dino's "
                                             r"limit of 25,000,000 pixels \(raise it with M2DINO_MAX_IMAGE_PIXELS"):
            reader(bomb)
    assert not [w for w in caught if w.category is Image.DecompressionBombWarning]  # the one line is all


def test_a_bomb_mask_of_an_mmotu_image_is_refused_before_decoding(tmp_path, bomb):
    image = tmp_path / "1.JPG"
    scan(image)
    mmotu._decode.cache_clear()
    with pytest.raises(DataError, match="bomb.png: 12000×12000 image"):
        mmotu._decode(image, bomb, "cyst")


def test_a_bomb_in_dataset_bytes_is_refused_naming_the_row(bomb, no_decoding):
    with pytest.raises(DataError, match="dataset row 0: image bytes: 12000×12000 image"):
        _hf_image([{"image": {"bytes": bomb.read_bytes()}}], "image", 0)


def test_the_pixel_bound_is_set_by_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "scan.png"
    scan(path)
    monkeypatch.setenv("M2DINO_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(ImageTooLargeError, match="40×30 image \\(1,200 pixels\\) exceeds m2dino's limit of 1,000"):
        read_image(path)
    with pytest.raises(ImageTooLargeError, match="array"):
        to_rgb_uint8(np.zeros((30, 40), np.uint8), name="array")


# 2. PIL's own DecompressionBombError, and bad files in a predicted folder


def test_pils_decompression_bomb_error_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "scan.png"
    scan(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL refuses above twice this
    with pytest.raises(ImageFormatError, match="scan.png: refused as a decompression bomb"):
        read_image(path)


def test_predict_reports_bombs_and_bad_files_and_writes_the_good_scans(model_dir, tmp_path, bomb, capsys):
    folder = tmp_path / "scans"
    folder.mkdir()
    scan(folder / "good.png")
    bomb.rename(folder / "bomb.png")
    (folder / "notes.png").write_text("not an image")
    out = tmp_path / "out"
    code = main(["predict", "--model", str(model_dir), "--all", str(folder), "--out", str(out), "--device", "cpu",
                 "--quiet"])
    assert code == 2  # non-zero: some inputs failed; the count and every failed file are named
    err = capsys.readouterr().err
    assert err.startswith("m2dino predict: error: 2 of 3 images could not be read (the others were written)")
    assert "bomb.png: 12000×12000 image (144,000,000 pixels) exceeds m2dino's limit" in err
    assert "notes.png: not a readable image" in err and len(err.strip().splitlines()) == 1
    assert json.loads((out / "scans" / "good.json").read_text())["width"] == 40
    assert not (out / "scans" / "bomb.json").exists()


def test_predict_reports_pils_bomb_error_and_continues(model_dir, tmp_path, monkeypatch, capsys):
    """With m2dino's bound raised past PIL's own (2 × 89 M pixels), PIL's DecompressionBombError is one line."""
    folder = tmp_path / "scans"
    folder.mkdir()
    scan(folder / "a.png")
    declared_png(folder / "b.png", 14000, 14000)  # 196 M pixels
    monkeypatch.setenv("M2DINO_MAX_IMAGE_PIXELS", "1000000000")
    code = main(["predict", "--model", str(model_dir), "--all", str(folder), "--out", str(tmp_path / "o"),
                 "--device", "cpu", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "1 of 2 images could not be read" in err and "b.png: refused as a decompression bomb" in err
    assert (tmp_path / "o" / "scans" / "a_overlay.png").is_file()


# 3. predict's sizes, named by flag, refused before the model loads (the model path does not exist)


@pytest.mark.parametrize("flags, message", [
    (["--tile-width", "100000"], "--tile-width=100,000 exceeds m2dino's limit of 8,192 (raise it with "
                                 "M2DINO_MAX_TILE_WIDTH"),
    (["--tile-width", "-5"], "--tile-width=-5: expected a whole number >= 1"),
    (["--tile-width", "0"], "--tile-width=0: expected a whole number >= 1"),
    (["--batch-size", "0"], "--batch-size=0: expected a whole number >= 1"),
    (["--batch-size", "1000000"], "--batch-size=1,000,000 exceeds m2dino's limit of 4,096"),
])
def test_predict_sizes_are_checked_by_flag(tmp_path, capsys, flags, message):
    image = tmp_path / "scan.png"
    scan(image)
    code = main(["predict", "--model", str(tmp_path / "no-model"), "--all", str(image), "--out", str(tmp_path / "o"),
                 *flags, "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"m2dino predict: error: {message}") and err.count("\n") == 1


def test_an_overlay_too_large_to_draw_is_refused_per_image(model_dir, tmp_path, capsys):
    """A tall, narrow scan at a wide tile: 8,192 px wide tiles of a 2×4,000 scan are 16 million pixels tall."""
    with pytest.raises(LimitError, match="narrow.png: its overlay \\(2 tiles of 8192×16384000\\)"):
        check_panel_size((4000, 2), 2, 8192, "narrow.png")
    folder = tmp_path / "scans"
    folder.mkdir()
    scan(folder / "good.png")
    scan(folder / "narrow.png", (2, 4000))
    # 512 px tiles: the narrow scan's are still 1,024,000 px tall; the good scan's overlay stays small to draw
    code = main(["predict", "--model", str(model_dir), "--all", str(folder), "--out", str(tmp_path / "o"),
                 "--tile-width", "512", "--device", "cpu", "--quiet"])
    assert code == 2
    assert "narrow.png: its overlay (2 tiles of 512×1024000)" in capsys.readouterr().err
    assert (tmp_path / "o" / "scans" / "good_overlay.png").is_file()


# 5. --device that does not exist: one line naming the flag and what exists


@pytest.mark.parametrize("gpus, message", [
    (0, "--device cuda:7: not available: this machine has no CUDA GPU (use --device cpu)"),
    (1, "--device cuda:7: not available: this machine has 1 GPU (cuda:0)"),
    (2, "--device cuda:7: not available: this machine has 2 GPUs (cuda:0, cuda:1)"),
])
def test_resolve_device_names_what_exists(monkeypatch, gpus, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    with pytest.raises(ValueError) as raised:
        resolve_device("cuda:7")
    assert str(raised.value) == message
    assert resolve_device("cpu") == "cpu" and resolve_device(None) == ("cuda" if gpus else "cpu")
    with pytest.raises(ValueError, match="--device 'gpu0': not a device name; expected cpu, cuda, cuda:N or mps"):
        resolve_device("gpu0")


@pytest.mark.parametrize("command", [
    ["predict", "IMAGE", "--all", "--out", "OUT"],
    ["evaluate", "--data", "DATA", "--out", "OUT"],
    ["demo"],
])
def test_every_command_with_device_refuses_a_missing_gpu_by_flag(model_dir, tmp_path, monkeypatch, capsys, command):
    if command[0] == "demo":
        pytest.importorskip("gradio")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    image = tmp_path / "scan.png"
    scan(image)
    names = {"IMAGE": str(image), "OUT": str(tmp_path / "o"), "DATA": str(tmp_path)}
    argv = [names.get(a, a) for a in command] + ["--model", str(model_dir), "--device", "cuda:7"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (f"m2dino {command[0]}: error: --device cuda:7: not available: "
                                       "this machine has no CUDA GPU (use --device cpu)\n")


# 4. the demo: port, upload size, errors shown to the user, temporary files


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_demo_port_is_checked_by_flag(tmp_path, capsys, port):
    assert main(["demo", "--model", str(tmp_path), "--port", port]) == 2
    assert capsys.readouterr().err == f"m2dino demo: error: --port {port}: expected a port number from 1 to 65535\n"


UPLOAD_LIMIT = 400_000


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo app on 127.0.0.1 with a 400 KB upload limit and its own Gradio folder (to look for leftovers)."""
    pytest.importorskip("gradio")
    client_module = pytest.importorskip("gradio_client")
    from m2dino.demo import launch

    folder = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(folder / "server"))
        patch.setenv("M2DINO_MAX_UPLOAD_BYTES", str(UPLOAD_LIMIT))
        torch.manual_seed(0)
        model = M2DINO(M2DINOConfig(backbone="test", tasks=TASKS, moe_blocks=(3,), num_experts=2, top_k=1,
                                    decoder_features=8, image_size=32))
        app = launch(model, host="127.0.0.1", port=None, block=False)
        client = client_module.Client(app.local_url, verbose=False, download_files=str(folder / "client"))
        try:
            yield app, client, client_module, folder
        finally:
            app.close()


def ask(demo, path):
    _, client, client_module, _ = demo
    return client.predict(client_module.handle_file(str(path)), TASKS, api_name="/predict")


def test_demo_shows_why_a_text_file_is_refused(demo, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a scan")
    with pytest.raises(demo[2].exceptions.AppError, match=r"^notes.txt: not a readable image"):
        ask(demo, notes)


def test_demo_refuses_a_bomb_before_decoding_and_says_so(demo, bomb):
    with pytest.raises(demo[2].exceptions.AppError,
                       match=r"^bomb.png: 12000×12000 image \(144,000,000 pixels\) exceeds m2dino's limit"):
        ask(demo, bomb)


def test_demo_refuses_an_upload_over_the_limit(demo, tmp_path):
    import httpx

    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(UPLOAD_LIMIT + 1))
    with pytest.raises(ValueError, match=f"exceeds the maximum file size of {UPLOAD_LIMIT} bytes"):
        ask(demo, big)  # the client is told the limit; so is the browser
    # a client that ignores it: the server stops reading and stores nothing
    app = demo[0]
    response = httpx.post(f"{app.local_url}gradio_api/upload", files={"files": ("big.png", big.read_bytes())})
    assert response.status_code == 413 and f"maximum allowed size of {UPLOAD_LIMIT} bytes" in response.text
    assert not [p for p in (demo[3] / "server").rglob("big.png")]


def test_demo_reads_a_file_over_the_limit_nowhere(tmp_path, monkeypatch):
    """The predictor's own check (an app built with build_app and launched without max_file_size)."""
    pytest.importorskip("gradio")
    from m2dino.demo.app import read_upload

    path = tmp_path / "upload.png"
    scan(path)
    monkeypatch.setenv("M2DINO_MAX_UPLOAD_BYTES", "100")
    with pytest.raises(LimitError, match=r"^scan_from_user.png: [\d,]+ bytes exceeds the demo's upload limit of 100 "
                                         "bytes \\(raise it with M2DINO_MAX_UPLOAD_BYTES"):
        read_upload({"path": str(path), "orig_name": "scan_from_user.png"})


def test_demo_still_predicts_a_scan_and_leaves_no_files_behind(tmp_path):
    """Uploads and per-request JSON files are deleted when the server stops (Gradio's copies of the bundled
    examples stay: they are the same files every time)."""
    pytest.importorskip("gradio")
    client_module = pytest.importorskip("gradio_client")
    from m2dino.demo import launch
    from m2dino.visualize.examples import example_images

    examples = {p.name for p in example_images()}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "server"))
        model = M2DINO(M2DINOConfig(backbone="test", tasks=TASKS, moe_blocks=(3,), num_experts=2, top_k=1,
                                    decoder_features=8, image_size=32))
        app = launch(model, host="127.0.0.1", port=None, block=False)
        try:
            client = client_module.Client(app.local_url, verbose=False, download_files=str(tmp_path / "client"))
            path = tmp_path / "upload.png"
            scan(path, (40, 30))
            overlay, summary, _, json_file = client.predict(client_module.handle_file(str(path)), TASKS,
                                                            api_name="/predict")
            assert json.loads(open(json_file).read())["height"] == 30
            assert {p.name for p in (tmp_path / "server").rglob("*") if p.is_file()} - examples
        finally:
            app.close()
    left = {p.name for p in (tmp_path / "server").rglob("*") if p.is_file()} - examples
    assert not left


# 6. EXIF orientation (predict and demo only) and palette transparency


def exif_rotated(path) -> None:
    """A 40×20 scan whose EXIF says: show me turned a quarter (orientation 6), i.e. as 20×40."""
    exif = Image.Exif()
    exif[0x0112] = 6
    image = np.zeros((20, 40), np.uint8)
    image[:, :5] = 255  # a bright left edge, on top once turned
    Image.fromarray(image).save(path, exif=exif.tobytes())


def test_exif_orientation_applies_to_predict_but_not_to_training_reads(model_dir, tmp_path):
    path = tmp_path / "phone.jpg"
    exif_rotated(path)
    assert read_image(path).size == (40, 20)  # the data readers: masks and points share the stored grid
    turned = to_rgb_uint8(path, exif_orientation=True)
    assert turned.shape == (40, 20, 3) and turned[:3].mean() > 200  # the bright edge is now the top
    assert main(["predict", "--model", str(model_dir), "--all", str(path), "--out", str(tmp_path / "o"),
                 "--device", "cpu", "--quiet"]) == 0
    record = json.loads((tmp_path / "o" / "phone.json").read_text())
    assert (record["height"], record["width"]) == (40, 20)


def test_a_palette_image_with_transparency_is_named_as_such(tmp_path):
    path = tmp_path / "palette.png"
    image = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).convert("P")
    image.info["transparency"] = 0
    image.save(path, transparency=0)
    with pytest.raises(ImageFormatError, match=r"palette.png: palette image with a transparent colour \(mode P with "
                                               r"a transparency entry\); expected gray or RGB. .*convert\('RGB'\)"):
        to_rgb_uint8(path)
    assert to_rgb_uint8(path, allow_rgba=True).shape == (8, 8, 3)  # drawing paths still take it


def test_valid_images_still_read(tmp_path):
    path = tmp_path / "scan.png"
    scan(path)
    assert to_rgb_uint8(path).shape == (30, 40, 3)
    buffer = BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(buffer, format="PNG")
    assert _hf_image([{"image": {"bytes": buffer.getvalue()}}], "image", 0).shape == (4, 4, 3)
