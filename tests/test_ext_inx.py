"""The .inx menus against their scripts, with inkex's own checker (schema where the inkex has
one; parameters ↔ add_arguments one to one, same types, defaults and choices)."""

from __future__ import annotations

import unittest

import pytest

from extension_support import EXTENSION_DIR, REPO, import_extension_modules, use_engine_modules_as_copies

import_extension_modules()

from inkex.inx import InxFile  # noqa: E402
from inkex.tester.inx import InxMixin  # noqa: E402

INX_FILES = sorted((REPO / "inx").glob("*.inx"))


class InxCheck(InxMixin, unittest.TestCase):
    def runTest(self) -> None:  # unittest wants one; the checks are called directly
        pass


@pytest.fixture(autouse=True)
def beside_the_scripts(monkeypatch):
    """The checker imports the script named in the .inx relative to the working directory, as
    Inkscape does from the extension folder; the client module is the engine's, renamed."""
    monkeypatch.chdir(EXTENSION_DIR)
    use_engine_modules_as_copies(monkeypatch)


@pytest.mark.parametrize("inx", INX_FILES, ids=lambda p: p.name)
def test_inx_matches_its_script(inx):
    InxCheck().assertInxIsGood(str(inx))


def test_menu_ids_and_submenu():
    ids = {InxFile(str(inx)).ident for inx in INX_FILES}
    assert ids == {"org.clipasso.sketch", "org.clipasso.refine", "org.clipasso.status", "org.clipasso.insert"}
    for inx in INX_FILES:
        text = inx.read_text()
        assert '<submenu name="CLIPasso"/>' in text and 'needs-live-preview="false"' in text
