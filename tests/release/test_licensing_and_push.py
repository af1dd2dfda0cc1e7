"""The weights' licence rule, and the Hub upload up to the huggingface_hub calls."""

from __future__ import annotations

import pytest

from m2dino.release import hub_token, is_noncommercial, push_release, weights_license


@pytest.mark.parametrize("license_id, expected", [
    ("CC-BY-NC-4.0", True), ("CC-BY-NC-SA-4.0", True), ("cc-by-nc-nd-4.0", True), ("other-noncommercial", True),
    ("CC-BY-4.0", False), ("CC-BY-SA-4.0", False), ("CC0-1.0", False), ("Apache-2.0", False), ("MIT", False),
])
def test_noncommercial_licences_are_recognised(license_id, expected):
    assert is_noncommercial(license_id) is expected


def test_permissive_sources_give_apache_by_default():
    decision = weights_license({"hc18": "CC-BY-4.0", "african_planes": "CC-BY-4.0"})
    assert (decision.license, decision.hub_id, decision.noncommercial_sources) == ("Apache-2.0", "apache-2.0", ())
    assert "no training source restricts commercial use" in decision.reason


def test_one_noncommercial_source_makes_the_weights_noncommercial():
    decision = weights_license({"hc18": "CC-BY-4.0", "busi": "CC-BY-NC-4.0"})
    assert decision.license == "CC-BY-NC-4.0" and decision.noncommercial_sources == ("busi",)
    assert "because busi is licensed for non-commercial use only" in decision.reason


def test_a_chosen_noncommercial_licence_is_kept():
    assert weights_license({"busi": "CC-BY-NC-4.0"}, "CC-BY-NC-SA-4.0").hub_id == "cc-by-nc-sa-4.0"


def test_a_permissive_choice_over_a_noncommercial_source_is_refused():
    with pytest.raises(ValueError, match=r"'Apache-2.0' is not non-commercial.*busi \(CC-BY-NC-4.0\).*leave those "
                                         r"datasets out"):
        weights_license({"hc18": "CC-BY-4.0", "busi": "CC-BY-NC-4.0"}, "Apache-2.0")


def test_leaving_the_noncommercial_source_out_allows_a_permissive_licence():
    assert weights_license({"hc18": "CC-BY-4.0"}, "Apache-2.0").license == "Apache-2.0"


def test_every_source_needs_a_licence():
    with pytest.raises(ValueError, match="licenses: expected the licence of each training dataset"):
        weights_license({})
    with pytest.raises(ValueError, match="licenses.hc18: expected an SPDX licence id"):
        weights_license({"hc18": " "})


class FakeApi:
    calls: list = []

    def __init__(self, token=None):
        FakeApi.calls.append(("init", token))

    def create_repo(self, repo_id, **kwargs):
        FakeApi.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        FakeApi.calls.append(("upload_folder", kwargs))
        return type("Info", (), {"commit_url": "https://huggingface.co/org/name/commit/abc"})()


def test_push_creates_the_repo_and_uploads_the_folder(tmp_path, monkeypatch):
    import huggingface_hub

    FakeApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    (tmp_path / "README.md").write_text("card")
    assert hub_token("org/name") == "hf_test_token"
    url = push_release(tmp_path, "org/name")
    assert url == "https://huggingface.co/org/name/commit/abc"
    assert FakeApi.calls[0] == ("init", "hf_test_token")
    assert FakeApi.calls[1] == ("create_repo", "org/name", {"repo_type": "model", "private": False, "exist_ok": True})
    name, upload = FakeApi.calls[2]
    assert name == "upload_folder" and upload["repo_id"] == "org/name" and upload["folder_path"] == str(tmp_path)
    assert upload["repo_type"] == "model" and "m2dino release" in upload["commit_message"]


def test_push_without_a_token_is_refused_before_the_api(tmp_path, monkeypatch):
    import huggingface_hub

    FakeApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(ValueError, match="no Hugging Face token: run `huggingface-cli login` or set HF_TOKEN"):
        push_release(tmp_path, "org/name")
    assert FakeApi.calls == []
