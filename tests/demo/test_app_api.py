"""The demo's API through `gradio_client`, against the app served by the test on 127.0.0.1."""

import json

import pytest
from PIL import Image

from m2dino.visualize.examples import example_images

from .conftest import TASKS

client_module = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def client(demo_app):
    assert demo_app.local_url.startswith("http://127.0.0.1:")  # localhost only by default
    return client_module.Client(demo_app.local_url, verbose=False)


def test_predict_endpoint_returns_overlay_tables_and_json(client):
    scan = example_images()[0]  # the synthetic fetal head, 480×360
    overlay, summary, probabilities, json_file = client.predict(
        client_module.handle_file(str(scan)), TASKS, api_name="/predict")
    with Image.open(overlay) as image:
        assert image.size == (3 * 480 + 2 * 4, 360)   # three tiles of 480 px, the scan's aspect kept
    assert [row[0] for row in summary["data"]] == TASKS
    assert summary["data"][2][2].endswith(" mm")      # the measurement with its unit
    rows = probabilities["data"]
    assert {row[0] for row in rows} == {"fetal_plane_cls"} and len(rows) == 6
    assert rows[0][2] >= rows[-1][2] and sum(row[2] for row in rows) == pytest.approx(1.0, abs=1e-3)
    record = json.loads(open(json_file).read())
    assert (record["height"], record["width"]) == (360, 480)    # original pixels
    assert record["predictions"]["fetal_head"]["classes"][0]["rle"]["size"] == [360, 480]
    assert record["predictions"]["fetal_head_circumference"]["unit"] == "mm"


def test_predict_endpoint_explains_missing_input(client):
    with pytest.raises(client_module.exceptions.AppError, match="Choose at least one task"):
        client.predict(client_module.handle_file(str(example_images()[0])), [], api_name="/predict")
    with pytest.raises(client_module.exceptions.AppError, match="Upload a scan or pick an example first"):
        client.predict(None, TASKS, api_name="/predict")
