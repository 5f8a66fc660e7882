"""A real ``clipasso serve`` process for tests over loopback HTTP, and the job settings they use.

The ``engine`` fixture (conftest.py) starts one for the whole session; tests that need an engine
of their own (limits, restarts) call :func:`start_engine` / :func:`stop_engine`.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import requests

from clipasso_engine.client import EngineClient
from extension_support import free_port

MAX_QUEUE = 16
# few, cheap steps: saliency off and one augmentation make a job cost well under a second
QUICK = {"preset": "fast", "iterations": 2, "strokes": 4, "aug_bank": 0, "augmentations": 1,
         "saliency": False, "eval_every": 1}
LONG = dict(QUICK, iterations=20000)                     # runs until cancelled


@dataclass
class Engine:
    url: str
    port: int
    token: str
    config_dir: Path
    proc: subprocess.Popen
    log: Path

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **extra}

    def client(self) -> EngineClient:
        return EngineClient(self.url, self.token, timeout=30)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.url + path, headers=self.headers(), timeout=30, **kw)

    def post_job(self, image: bytes, settings: dict, **body: Any) -> requests.Response:
        payload = {"image": base64.b64encode(image).decode(), "settings": settings, **body}
        return requests.post(self.url + "/v1/jobs", json=payload, headers=self.headers(), timeout=60)


def wait_for(check: Callable[[], Any], timeout: float = 60.0, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {check}")
        time.sleep(every)


def engine_env(config_dir: Path) -> dict[str, str]:
    return dict(os.environ, CLIPASSO_CONFIG_DIR=str(config_dir), CLIPASSO_CLIP="random:tiny-RN",
                CLIPASSO_SALIENCY_CLIP="random:tiny-ViT", PYTHONUNBUFFERED="1")


def start_engine(folder: Path, *extra: str, env: Optional[dict[str, str]] = None,
                 preexec_fn: Optional[Callable[[], None]] = None) -> Engine:
    """Start ``python -m clipasso_engine serve`` on a free port; return once /v1/health answers.
    ``env``: variables to set beside the usual ones; ``preexec_fn``: run in the child (limits)."""
    config, log = folder / "config", folder / "engine.log"
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clipasso_engine", "serve", "--port", str(port), "--device", "cpu", *extra],
            stdout=out, stderr=subprocess.STDOUT, env={**engine_env(config), **(env or {})}, preexec_fn=preexec_fn,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> Optional[str]:
        if proc.poll() is not None:
            raise AssertionError(f"the engine exited with {proc.returncode}:\n{log.read_text()}")
        token_file = config / "token"
        if not token_file.exists():
            return None
        token = token_file.read_text().strip()
        try:
            ok = requests.get(url + "/v1/health", headers={"Authorization": f"Bearer {token}"}, timeout=5).ok
        except requests.ConnectionError:
            return None
        return token if ok else None

    token = wait_for(up, timeout=120, every=0.25)
    return Engine(url, port, token, config, proc, log)


def stop_engine(engine: Engine) -> None:
    if engine.proc.poll() is None:
        engine.proc.terminate()
        try:
            engine.proc.wait(20)
        except subprocess.TimeoutExpired:
            engine.proc.kill()
            engine.proc.wait()
