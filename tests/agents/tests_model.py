"""A fake model that fixes a bug it can only learn from the output of run_tests.

    model = TestsFixingModel(extra_write=False)
    with FakeLLMServer(responder=model) as server:
        ...  # a run whose profile (openai, JSON text) points at server.base_url

The checkout holds calc.py, whose add() returns a + b + K for a secret K, and test_calc.py, whose
test_add expects add(2, 2) == 4. The coder runs run_tests (step 1), reads 4 + K from pytest's failure
in the observation and replaces `return a + b + K` with `return a + b` through edit_file (step 2): it
never reads the file, so the edit applies only if the observation reached it. It runs the tests again
(step 3) and, when the observation says they passed, hands the card on (step 4). With `extra_write` it
first writes a note (a later commit, which makes the passing run stale). The integrity guard moves the
card to done at once, trusting the card's latest verification: the done gate decides.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from tests.agents.fake_llm import RecordedRequest, Reply, json_error, openai_stream

USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
_ROLE = re.compile(r"^ORKET-ROLE: (\S+)", re.MULTILINE)
_FAILED_ASSERT = re.compile(r"assert (\d+) == 4")
_STATUS = re.compile(r'"status": "(\w+)"')


class TestsFixingModel:
    __test__ = False

    def __init__(self, *, extra_write: bool = False) -> None:
        self.extra_write = extra_write
        self.errors: list[str] = []
        self.seen_statuses: list[str] = []
        self.learned: int | None = None
        self._lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> Reply:
        if not request.path.endswith("/chat/completions"):
            return json_error(404, "not found")
        with self._lock:
            messages = request.json().get("messages") or []
            role_match = _ROLE.search(str(messages[0].get("content") or "")) if messages else None
            role = role_match.group(1) if role_match else ""
            step = sum(1 for message in messages if message.get("role") == "assistant") + 1
            last = str(messages[-1].get("content") or "") if len(messages) > 2 else ""
            calls = self._coder(step, last) if role == "coder" else self._guard(step)
            text = "\n".join(json.dumps({"tool": name, "args": args}) for name, args in calls)
            answer = f"Next: {', '.join(name for name, _ in calls)}.\n```json\n{text}\n```"
            return openai_stream([answer[i : i + 40] for i in range(0, len(answer), 40)], usage=USAGE)

    def _status(self, observation: str) -> str:
        found = _STATUS.search(observation)
        status = found.group(1) if found else "missing"
        self.seen_statuses.append(status)
        return status

    def _coder(self, step: int, observation: str) -> list[tuple[str, dict[str, Any]]]:
        if step == 1:
            return [("run_tests", {})]
        if step == 2:
            if self._status(observation) != "failed":
                self.errors.append(f"step 2: the first run_tests did not report a failure: {observation[:300]!r}")
            found = _FAILED_ASSERT.search(observation)
            if found is None:
                self.errors.append("step 2: the failing assertion is not in the observation")
                return [("finish_turn", {"summary": "I could not see why the tests fail."})]
            self.learned = int(found.group(1)) - 4
            fix = {"path": "calc.py", "old_text": f"return a + b + {self.learned}", "new_text": "return a + b"}
            return [("edit_file", fix)]
        if step == 3:
            return [("run_tests", {})]
        if step == 4 and self._status(observation) != "passed":
            self.errors.append(f"step 4: the second run_tests did not pass: {observation[:300]!r}")
            return [("finish_turn", {"summary": "The tests still fail."})]
        if step == 4 and self.extra_write:
            return [("write_file", {"path": "NOTES.md", "content": "Fixed add().\n"})]
        return [("update_card_status", {"status": "code_review", "reason": "The card's tests pass."})]

    def _guard(self, step: int) -> list[tuple[str, dict[str, Any]]]:
        if step == 1:
            return [("update_card_status", {"status": "done", "reason": "The card's own tests passed."})]
        return [("finish_turn", {"summary": "Done was refused; a person decides."})]
