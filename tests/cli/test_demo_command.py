"""`m2dino demo` without the optional Gradio extra: one line saying how to install it."""

import sys

from m2dino.cli.main import main


def test_demo_without_gradio_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # makes `import gradio` fail as if not installed
    monkeypatch.delitem(sys.modules, "m2dino.demo", raising=False)
    monkeypatch.delitem(sys.modules, "m2dino.demo.app", raising=False)
    assert main(["demo", "--model", str(tmp_path)]) == 2
    assert "the demo needs Gradio: pip install 'm2dino[demo]'" in capsys.readouterr().err
