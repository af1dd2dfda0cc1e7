"""The weights' licence of a release, from the licences of the data it was trained on.

The rule (one per release, stated on its card): weights trained on a non-commercial (NC) source are
released non-commercial. A release that wants a permissive licence must leave the NC sources out of its
training data; choosing a permissive licence while an NC source is trained on is refused. The
weights' legal status under a dataset licence is unsettled; this rule takes the cautious reading, as
the dataset owners would.

Licences are SPDX ids (``CC-BY-4.0``, ``CC-BY-NC-SA-4.0``, ``CC0-1.0``, ``Apache-2.0``); the Hub's
``license:`` field takes the same ids in lower case.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# What the weights get when nothing forbids it: the licence of the m2dino code itself.
PERMISSIVE_DEFAULT = "Apache-2.0"
NONCOMMERCIAL_DEFAULT = "CC-BY-NC-4.0"


@dataclass(frozen=True)
class LicenseDecision:
    """The weights' licence and why: ``license`` (SPDX id), ``hub_id`` (the card's ``license:``),
    the non-commercial sources that forced it (empty: none) and a sentence for the card."""

    license: str
    hub_id: str
    noncommercial_sources: tuple[str, ...]
    reason: str


def is_noncommercial(license_id: str) -> bool:
    """True for a non-commercial licence: an ``NC`` part in its SPDX id (CC-BY-NC-4.0, CC-BY-NC-SA-4.0,
    CC-BY-NC-ND-4.0) or "noncommercial" / "non-commercial" in its name."""
    text = license_id.strip().lower()
    return "nc" in text.replace("_", "-").split("-") or "noncommercial" in text or "non-commercial" in text


def weights_license(licenses: Mapping[str, str], chosen: str | None = None) -> LicenseDecision:
    """The weights' licence of a release trained on the datasets of ``licenses`` (dataset → SPDX id).
    ``chosen`` None: non-commercial (CC-BY-NC-4.0) when any source is, else Apache-2.0. A permissive
    ``chosen`` with a non-commercial source is a ValueError naming the sources and the two ways out."""
    if not licenses:
        raise ValueError("licenses: expected the licence of each training dataset (dataset: SPDX id, e.g. "
                         "hc18: CC-BY-4.0)")
    blank = [name for name, value in licenses.items() if not isinstance(value, str) or not value.strip()]
    if blank:
        raise ValueError(f"licenses.{blank[0]}: expected an SPDX licence id (e.g. CC-BY-4.0), got "
                         f"{licenses[blank[0]]!r}")
    noncommercial = tuple(sorted(name for name, value in licenses.items() if is_noncommercial(value)))
    listed = ", ".join(f"{name} ({licenses[name]})" for name in sorted(licenses))
    if chosen is None:
        chosen = NONCOMMERCIAL_DEFAULT if noncommercial else PERMISSIVE_DEFAULT
    elif noncommercial and not is_noncommercial(chosen):
        sources = ", ".join(f"{name} ({licenses[name]})" for name in noncommercial)
        raise ValueError(f"license: {chosen!r} is not non-commercial, but the release trains on non-commercial "
                         f"data: {sources}. Choose a non-commercial licence (e.g. {NONCOMMERCIAL_DEFAULT}) or "
                         "leave those datasets out of the release (run.data.sources, test and licenses)")
    if noncommercial:
        reason = (f"non-commercial because {', '.join(noncommercial)} "
                  f"{'is' if len(noncommercial) == 1 else 'are'} licensed for non-commercial use only "
                  f"(training data: {listed})")
    else:
        reason = f"no training source restricts commercial use (training data: {listed})"
    return LicenseDecision(chosen, chosen.strip().lower(), noncommercial, reason)
