"""Our XML namespace, ``xmlns:clipasso="http://clipasso.org/ns/1.0"``, and the attributes kept in it.

Placeholders of background jobs and sketch layers carry what finishing, rerunning or varying a
sketch needs in attributes of this namespace. They are always read and written by namespace
URI (``{uri}name``), never by prefix: another program may save the document with its own prefix
for it. Importing this module registers the prefix ``clipasso`` with lxml and inkex, so new
documents spell it that way.
"""

import json
from typing import Any, Dict, Optional

import inkex
from lxml import etree

NS = "http://clipasso.org/ns/1.0"
PREFIX = "clipasso"

etree.register_namespace(PREFIX, NS)
try:  # inkex's own prefix table (inkex.addNS, xpath); where it lives differs between inkex versions
    from inkex.elements._utils import NSS
except ImportError:  # pragma: no cover
    NSS = {}
NSS.setdefault(PREFIX, NS)

# on placeholders and sketch layers
JOB = "job"                  # the engine's job id
ENGINE = "engine"            # the engine URL the job went to
SETTINGS = "settings"        # the settings JSON sent
SEED = "seed"                # the seed sent (settings.seed)
IMAGE = "image"              # id of the photo
# on placeholders only
PLACEHOLDER = "placeholder"  # "sketch" or "refine": marks a placeholder and says which
SIZE = "size"                # "W H": the photo's pixels as sent (the strokes come back in these)
PLACEMENT = "placement"      # matrix(): photo pixels → root user space at submit time
STATE = "state"              # "failed" or "lost" once Insert has reported it; absent while pending
REPLACES = "replaces"        # Refine: ids of the paths to redraw, space-separated
COUNTS = "counts"            # Refine: strokes of each of those paths, in order (the rest were fixed)
# on sketch layers only
ENGINE_VERSION = "engine-version"
CLIP = "clip"
SALIENCY_CLIP = "saliency-clip"
STOPPED = "stopped"          # "cancelled" when the strokes are a cancelled job's best so far
SCORE = "score"              # the level's CLIP score (ViT-B/32 cosine of sketch and photo), when known


def qname(name: str) -> str:
    """``{http://clipasso.org/ns/1.0}name``: the attribute ``name`` in our namespace."""
    return "{%s}%s" % (NS, name)


def get(element: inkex.BaseElement, name: str) -> Optional[str]:
    return element.get(qname(name))


def put(element: inkex.BaseElement, name: str, value: Any) -> None:
    """Set ``clipasso:name``; None removes it; dicts and lists are stored as compact JSON."""
    if value is None:
        element.attrib.pop(qname(name), None)
        return
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True, separators=(",", ":"))
    element.set(qname(name), str(value))


def settings_of(element: inkex.BaseElement) -> Dict[str, Any]:
    """The settings JSON kept on ``element`` ({} when absent or unreadable)."""
    try:
        value = json.loads(get(element, SETTINGS) or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
