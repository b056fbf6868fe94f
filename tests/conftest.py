"""Test-wide settings: one torch thread, so results and messages do not depend on how busy the machine is
(``ambient`` otherwise picks its threads from the load average and says so on stderr)."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMBIENT_THREADS", "1")
