#!/usr/bin/env python3
"""Extensions ▸ CLIPasso ▸ Engine status: is the engine up, where, on which device, with
which models; which sketches it is making and which of this document's are finished but not
inserted yet. Optionally starts it now (loading it ahead of the first sketch), cancels every
sketch, stops it (its unfinished sketches resume at its next start) or restarts it (with the
models ``config.json`` names now; its unfinished sketches go on).

The report is shown the only way an extension can: as the message Inkscape displays when a
run ends with ``inkex.AbortExtension``. The document is never changed.
"""

import warnings
from typing import Any, Dict, List, Optional

import inkex

warnings.simplefilter("ignore")  # inkex turns warnings on; any stderr output opens a dialog in Inkscape

import clipasso_ns  # noqa: E402
from clipasso_client import EngineError  # noqa: E402
from clipasso_common import (  # noqa: E402
    Config, EngineExtension, answering_client, connect, other_models, restart_engine, weights_missing,
)
from clipasso_jobs import INSERT_MENU, placeholders, progress_text, valid_job_id, what  # noqa: E402

ACTIONS = ("report", "cancel_all", "stop", "restart")
ACTIVE = ("queued", "running")


def describe(url: str, health: Dict[str, Any], config: Config, models: Optional[Dict[str, Any]] = None) -> str:
    """A few lines about a running engine, from its ``/v1/health`` (and ``/v1/models``) answer:
    which models, which of their files are missing, whether ``config.json`` asks for others."""
    lines = [
        "The CLIPasso engine {} is running at {} on {}.".format(health.get("version", ""), url, health.get("device", "?")),
        "Jobs: {} running, {} waiting.".format(health.get("running", 0), health.get("queued", 0)),
        "Models: {} (loss), {} (start points).".format(health.get("clip", "?"), health.get("saliency_clip", "?")),
    ]
    if any(str(health.get(k, "")).startswith("random:") for k in ("clip", "saliency_clip")):
        lines.append("These are RANDOM test weights: the strokes will not resemble the photo.")
    if models and models.get("missing"):
        lines.append(weights_missing(models["missing"], str(models.get("weights_folder") or "")))
    asked = other_models(config, health)
    if asked:
        lines.append("{} asks for {}: choose the action Restart the engine here to use {} (unfinished sketches go "
                     "on).".format(config.path, ", ".join("{} = {}".format(k, v) for k, v in sorted(asked.items())),
                                   "them" if len(asked) > 1 else "it"))
    lines.append("Log: {}".format(config.log_path))
    return "\n".join(lines)


def document_sketches(svg: inkex.SvgDocumentElement, client: Any, url: str) -> List[str]:
    """One line per placeholder of this document sent to the engine at ``url``: running (with
    progress), waiting, finished and not inserted yet, or why it will not come."""
    lines = []
    for element in placeholders(svg):
        if (clipasso_ns.get(element, clipasso_ns.ENGINE) or url) != url:
            continue
        state = clipasso_ns.get(element, clipasso_ns.STATE)
        if state is None and not valid_job_id(clipasso_ns.get(element, clipasso_ns.JOB)):
            state = "damaged placeholder (no job id)"
        if state is None:
            try:
                status = client.status(clipasso_ns.get(element, clipasso_ns.JOB) or "", preview=False)
            except EngineError as exc:
                if exc.status != 404:
                    raise
                status = {"state": "lost"}
            state = status["state"]
            if state in ACTIVE:
                state = progress_text(status)
            elif state == "done" or (state == "cancelled" and status.get("has_result")):
                state = "finished, not inserted yet ({})".format(INSERT_MENU)
        lines.append("- {}: {}".format(what(element), state))
    return lines


class Status(EngineExtension):
    """Report on the engine (and start, stop or restart it, or cancel its sketches, when asked)."""

    def add_arguments(self, pars):
        super().add_arguments(pars)
        pars.add_argument("--start", type=inkex.Boolean, default=True, help="start the engine if it is not running")
        pars.add_argument("--action", default="report", choices=ACTIONS, help="report, cancel_all, stop or restart")

    def effect(self):
        config = Config.load()
        url = self.engine_url(config)
        action = self.options.action
        if action == "restart":
            raise inkex.AbortExtension(self.restart(config, url))
        if self.options.start and action == "report":
            client = connect(config, url)
        else:
            client = answering_client(config, url)
        if client is None:
            raise inkex.AbortExtension(
                "No CLIPasso engine is running at {}. Sketch from image starts it when needed "
                "(engine Python: {}; settings: {}).".format(url, config.engine_python or "not configured", config.path)
            )
        try:
            raise inkex.AbortExtension(self.act(client, url, config, action))
        except EngineError as exc:
            raise inkex.AbortExtension("The engine at {} refused: {}".format(url, exc))

    def restart(self, config: Config, url: str) -> str:
        """Restart the engine (start it when none runs) and describe the new one."""
        try:
            client, stopped = restart_engine(config, url)
            text = self.report(client, url, config)
        except EngineError as exc:
            raise inkex.AbortExtension("The engine at {} refused: {}".format(url, exc))
        if not stopped:
            return "No CLIPasso engine was running; it is started now.\n" + text
        return ("The CLIPasso engine was restarted with the models in {}. Unfinished sketches go on from where they "
                "were saved.\n{}".format(config.path, text))

    def act(self, client: Any, url: str, config: Config, action: str) -> str:
        if action == "cancel_all":
            active = [job for job in client.jobs() if job.get("state") in ACTIVE]
            try:
                client.cancel_all()
            except EngineError as exc:
                if exc.status not in (404, 405):
                    raise
                for job in active:  # an engine from before DELETE /v1/jobs: one by one
                    client.cancel(job["id"])
            return ("Cancelled {} sketch{}. Insert finished sketches puts in what they had drawn so far.".format(
                len(active), "" if len(active) == 1 else "es") if active else "No sketches were running or waiting.")
        if action == "stop":
            try:
                client.shutdown()
            except EngineError as exc:
                if exc.status is not None:
                    raise
            return ("The CLIPasso engine at {} is stopping. Unfinished sketches resume when it starts again "
                    "(Sketch from image or Insert finished sketches start it).".format(url))
        return self.report(client, url, config)

    def report(self, client: Any, url: str, config: Config) -> str:
        """The engine's description and this document's sketches."""
        try:
            models = client.models()  # type: Optional[Dict[str, Any]]
        except EngineError:           # an engine from before /v1/models said what it lacks
            models = None
        text = describe(url, client.health(), config, models)
        mine = document_sketches(self.svg, client, url)
        if mine:
            text += "\nIn this document:\n" + "\n".join(mine)
        return text


if __name__ == "__main__":
    Status().run()
