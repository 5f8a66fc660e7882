#!/usr/bin/env python3
"""Extensions ▸ CLIPasso ▸ Insert finished sketches: every background job of the document.

For each placeholder left by a background Sketch or Refine (``clipasso_jobs``), asks its engine
(starting a local one that is not running: its jobs resume from their last checkpoint) and

* done: replaces the placeholder by the sketch layers, over the photo where the photo is now
  (moved, scaled, rotated or regrouped meanwhile), or redraws the refined paths in place;
* cancelled: the same with the best strokes so far, marked cancelled, when the engine kept some;
* queued or running: writes the progress and the time left into its label;
* failed, or unknown to the engine: says why in its label and leaves it for the designer to delete.

A photo deleted meanwhile: the strokes go where it was (``clipasso:placement``). At most one
short message sums up what needs the designer's attention; a run that only inserted says
nothing. As Inkscape keeps an extension's changes only when it exits normally, that message is
written (once, at the end) as a normal exit's message, not as an abort.
"""

import sys
import warnings
from typing import Any, Dict, List, Optional

import inkex

warnings.simplefilter("ignore")  # inkex turns warnings on; any stderr output opens a dialog in Inkscape

import clipasso_ns  # noqa: E402
from clipasso_client import EngineError, EngineUnavailable  # noqa: E402
from clipasso_common import Config, connect, is_local, weights_reason  # noqa: E402
from clipasso_jobs import pending_label, pending_note, photo_size, placeholders, progress_text, set_label, valid_job_id, what  # noqa: E402
from clipasso_placement import composed_transform, pixels_to_document  # noqa: E402
from clipasso_strokes import add_level_layers, replace_path_strokes  # noqa: E402


class Outcome:
    """What one Insert run did, for its summary message."""

    def __init__(self) -> None:
        self.inserted = 0
        self.running = []  # type: List[str]
        self.problems = []  # type: List[str]
        self.changed = False

    def message(self, running: bool = True) -> str:
        """The summary; ``running=False`` leaves out the jobs still at work (their placeholders'
        labels and notes already say how far they are)."""
        lines = []
        if self.inserted and ((running and self.running) or self.problems):
            lines.append("Inserted {} finished sketch{}.".format(self.inserted, "" if self.inserted == 1 else "es"))
        lines += self.problems
        if running and self.running:
            lines.append("Still working: {}. Run Insert finished sketches again later.".format("; ".join(self.running)))
        return "\n".join(lines)


def stroke_slices(element: inkex.BaseElement) -> List[int]:
    try:
        return [int(n) for n in (clipasso_ns.get(element, clipasso_ns.COUNTS) or "").split()]
    except ValueError:
        return []


LABEL_REASON = 100  # characters of the reason in a label; the message has all of it
STATE_WORDS = {"failed": "failed", "cancelled": "was cancelled", "lost": "is lost"}


class Insert(inkex.EffectExtension):
    """Put the finished background sketches of the document in place."""

    def effect(self):
        found = [el for el in placeholders(self.svg) if clipasso_ns.get(el, clipasso_ns.STATE) is None]
        if not found:
            raise inkex.AbortExtension(
                "No CLIPasso sketches are waiting in this document. Sketch from image with \"Keep working while it "
                "sketches\" ticked leaves a placeholder layer here; this entry replaces it by the finished sketch."
            )
        config = Config.load()
        clients = {}  # type: Dict[str, Any]
        outcome = Outcome()
        for element in found:
            url = (clipasso_ns.get(element, clipasso_ns.ENGINE) or config.engine_url).rstrip("/")
            if not valid_job_id(clipasso_ns.get(element, clipasso_ns.JOB)):
                self.give_up(element, "failed", "its job id is damaged", outcome)
                continue
            if not (is_local(url) or url == config.engine_url):
                # the document names the engine: our token goes only to this computer's or the configured one
                outcome.problems.append("The {} was sent to the engine at {}, which is not this computer's; set it as the "
                                        "engine URL in {} to fetch it.".format(what(element), url, config.path))
                continue
            if url not in clients:
                clients[url] = connect(config, url)
            self.finish(element, clients[url], outcome)
        if not outcome.changed:
            raise inkex.AbortExtension(outcome.message() or "Nothing to insert yet.")
        # A run that changed the document speaks only of problems: progress is in the placeholders'
        # labels and notes, and any message is a dialog (docs/inkscape.md §3, gotcha 1) that a
        # designer must dismiss each time, and that blocks a headless run.
        message = outcome.message(running=False)
        if message:
            sys.stderr.write(message + "\n")  # shown by Inkscape, which keeps the changes (exit status 0)

    def finish(self, element: inkex.BaseElement, client: Any, outcome: Outcome) -> None:
        job = clipasso_ns.get(element, clipasso_ns.JOB) or ""
        try:
            status = client.status(job, preview=False)
        except EngineUnavailable as exc:
            raise inkex.AbortExtension("The engine stopped answering ({}). The document is unchanged.".format(exc))
        except EngineError as exc:
            if exc.status != 404:
                raise inkex.AbortExtension("The engine could not say how job {} stands: {}".format(job, exc))
            self.give_up(element, "lost", "the engine no longer has it (restarted without it, or kept too long)", outcome)
            return
        state = status.get("state")
        if state in ("queued", "running"):
            progress = progress_text(status)
            label = pending_label(element, progress)
            outcome.running.append("{} ({})".format(what(element), progress))
            if label != element.get("inkscape:label"):
                set_label(element, label, pending_note(element, progress))
                outcome.changed = True
            return
        if state == "failed":
            reason = weights_reason(status.get("error_kind"), status.get("error_detail") or {})
            self.give_up(element, "failed", reason or status.get("error") or "no reason given", outcome)
            return
        result = self.fetch(client, job, status)
        if result is None:  # cancelled before it drew anything worth keeping
            self.give_up(element, "cancelled", "no strokes were kept", outcome)
            return
        if state == "cancelled":
            result.setdefault("engine", {})["stopped"] = "cancelled"
            outcome.problems.append("The {} was cancelled: its best strokes so far are in, marked cancelled.".format(what(element)))
        self.insert(element, result, outcome)

    def fetch(self, client: Any, job: str, status: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The job's strokes JSON; None for a cancelled job without strokes (``has_result``
        false, or an engine that predates it answering no result)."""
        if status.get("state") == "cancelled" and status.get("has_result") is False:
            return None
        try:
            return client.result(job)
        except EngineUnavailable as exc:
            raise inkex.AbortExtension("The engine stopped answering ({}). The document is unchanged.".format(exc))
        except EngineError as exc:
            if status.get("state") == "cancelled":
                return None
            raise inkex.AbortExtension("The engine could not hand over job {}: {}".format(job, exc))

    def give_up(self, element: inkex.BaseElement, state: str, why: str, outcome: Outcome) -> None:
        """Say in the label why there is no result, and stop asking for it (the placeholder stays
        until the designer deletes it)."""
        clipasso_ns.put(element, clipasso_ns.STATE, state)
        words = "{} {}".format(what(element), STATE_WORDS[state])
        short = why if len(why) <= LABEL_REASON else why[: LABEL_REASON - 1].rstrip() + "…"
        set_label(element, "CLIPasso: {}: {} (delete this layer)".format(words, short), "CLIPasso: {}".format(words))
        outcome.problems.append("The {}: {}.".format(words, why))
        outcome.changed = True

    def insert(self, element: inkex.BaseElement, result: Dict[str, Any], outcome: Outcome) -> None:
        size = photo_size(element)
        if size is not None and [int(result["width"]), int(result["height"])] != size:
            self.give_up(element, "failed", "the engine read the photo as {}×{} pixels, not {}×{}".format(
                result["width"], result["height"], size[0], size[1]), outcome)
            return
        image = self.svg.getElementById(clipasso_ns.get(element, clipasso_ns.IMAGE) or "")
        if not isinstance(image, inkex.Image):
            image = None
            outcome.problems.append("The photo of the {} was deleted: its strokes are where the photo was.".format(what(element)))
        try:
            placement = inkex.Transform(clipasso_ns.get(element, clipasso_ns.PLACEMENT))
        except (ValueError, TypeError):
            placement = inkex.Transform()
        settings = clipasso_ns.settings_of(element)
        job = clipasso_ns.get(element, clipasso_ns.JOB)
        if clipasso_ns.get(element, clipasso_ns.PLACEHOLDER) == "refine":
            self.redraw(element, result, image, placement, outcome)
        else:
            add_level_layers(self.svg, image, result, settings, job, to_document=placement, anchor=element,
                             image_id=clipasso_ns.get(element, clipasso_ns.IMAGE))
        element.getparent().remove(element)
        outcome.inserted += 1
        outcome.changed = True

    def redraw(self, element, result, image, placement, outcome: Outcome) -> None:
        """Refine: each edited path redrawn in place (same element and id) with its strokes."""
        (refined,) = result["levels"].values()
        ids = (clipasso_ns.get(element, clipasso_ns.REPLACES) or "").split()
        counts = stroke_slices(element)
        # photo pixels → document: over the photo where it is now, else where it was
        to_document = pixels_to_document(image, result["width"], result["height"]) if image is not None else placement
        start, missing = 0, 0
        for path_id, count in zip(ids, counts):
            mine, start = refined[start : start + count], start + count
            path = self.svg.getElementById(path_id)
            if not isinstance(path, inkex.PathElement):
                missing += 1
                continue
            replace_path_strokes(path, mine, -composed_transform(path) @ to_document)
        if missing:
            outcome.problems.append("{} of the refined paths were deleted meanwhile; their strokes were left out.".format(missing))


if __name__ == "__main__":
    Insert().run()
