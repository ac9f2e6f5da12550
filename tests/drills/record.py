"""What a drill tried and what came of it, saved for docs/reliability.md's table.

Each drill test makes a `Drill`, counts what it injected and every failure a user would have
seen (a stream lost, a request hung, a 5xx), asserts they are all 0, then `save()`s — so a
result is written only by a drill that held. `python -m tests.drills.report` turns the saved
results into the table.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).parents[2] / ".hearth" / "reliability"


@dataclass
class Drill:
    id: str  # stable: the table's row order and the results file's name
    title: str
    injected: str  # what was done to the stack, in words
    times: int = 0  # how many times it was done
    streams_lost: int = 0  # a stream that ended without `done`/an error event and [DONE]
    hung: int = 0  # a request with no answer within its bound
    server_errors: int = 0  # a 5xx, or an error that was not OpenAI-shaped JSON
    checked: str = ""  # what held, in words (e.g. "engine request closed ≤ 1 s")

    def failures(self) -> dict[str, int]:
        return {"streams lost": self.streams_lost, "hung": self.hung, "5xx": self.server_errors}

    def save(self) -> None:
        assert self.times > 0, f"drill {self.id} injected nothing"
        assert not any(self.failures().values()), f"drill {self.id}: {self.failures()}"
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{self.id}.json").write_text(json.dumps(asdict(self), indent=1, ensure_ascii=False))


def load_all(folder: Path = RESULTS) -> list[Drill]:
    return sorted((Drill(**json.loads(p.read_text())) for p in folder.glob("*.json")), key=lambda d: d.id)
