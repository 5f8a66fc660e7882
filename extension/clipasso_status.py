#!/usr/bin/env python3
"""Extensions ▸ CLIPasso ▸ Engine status: is the engine up, where, on which device, with
which models; optionally start it now (loading it ahead of the first sketch).

The report is shown the only way an extension can: as the message Inkscape displays when a
run ends with ``inkex.AbortExtension``. The document is never changed.
"""

import warnings
from typing import Any, Dict

import inkex

warnings.simplefilter("ignore")  # inkex turns warnings on; any stderr output opens a dialog in Inkscape

from clipasso_common import Config, EngineExtension, answering_client, connect  # noqa: E402


def describe(url: str, health: Dict[str, Any], config: Config) -> str:
    """A few lines about a running engine, from its ``/v1/health`` answer."""
    lines = [
        "The CLIPasso engine {} is running at {} on {}.".format(health.get("version", ""), url, health.get("device", "?")),
        "Jobs: {} running, {} waiting.".format(health.get("running", 0), health.get("queued", 0)),
        "Models: {} (loss), {} (start points).".format(health.get("clip", "?"), health.get("saliency_clip", "?")),
    ]
    if any(str(health.get(k, "")).startswith("random:") for k in ("clip", "saliency_clip")):
        lines.append("These are RANDOM test weights: the strokes will not resemble the photo.")
    lines.append("Log: {}".format(config.log_path))
    return "\n".join(lines)


class Status(EngineExtension):
    """Report on the engine (and start it when asked)."""

    def add_arguments(self, pars):
        super().add_arguments(pars)
        pars.add_argument("--start", type=inkex.Boolean, default=True, help="start the engine if it is not running")

    def effect(self):
        config = Config.load()
        url = self.engine_url(config)
        if self.options.start:
            client = connect(config, url)
        else:
            client = answering_client(config, url)
        if client is None:
            raise inkex.AbortExtension(
                "No CLIPasso engine is running at {}. Sketch from image starts it when needed "
                "(engine Python: {}; settings: {}).".format(url, config.engine_python or "not configured", config.path)
            )
        raise inkex.AbortExtension(describe(url, client.health(), config))


if __name__ == "__main__":
    Status().run()
