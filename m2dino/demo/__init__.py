"""The Gradio browser demo (``m2dino demo``); needs the ``demo`` extra."""

from .app import build_app, launch

__all__ = ["build_app", "launch"]
