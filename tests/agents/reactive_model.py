"""A fake model whose answers depend on the conversation it is sent, and which checks that conversation.

    model = ReactiveModel(protocol="openai", native=False)
    with FakeLLMServer(responder=model) as server:
        ...  # a run whose profile points at server.base_url
    assert model.errors == []

The model plays two roles of the standard team on one card:

- the coder copies a file: step 1 lists `notes` and reads `notes/source.txt` (one call per step when the
  output is constrained), step 2 writes `notes/copy.txt` with exactly the content the observation of the read
  showed, step 3 hands the card on to code_review;
- the integrity guard reads `notes/copy.txt`, checks it is the source's content, and moves the card to done.

Every chat request is checked before it is answered. A conversation is identified by its first two messages
(system prompt and card); after them it must hold, for each answer this model gave in that conversation and in
that order, the assistant message carrying the answer and then the observation of exactly its calls: for calls
written as JSON text one user message `ORKET-OBSERVATION: step <n>` with a section `ORKET-CALL: <i> <tool>
executed` per call, in order; for native calls one `tool` message per call, in order, naming the call by its
`tool_call_id` (OpenAI) or `tool_name` (Ollama). Anything missing, repeated, extra or out of order is recorded
in `errors` (the model still answers, so the run goes on and the test reports every problem at the end).

Requests to other paths (a tokenizer endpoint, a model list) get a 404, as from a server without them.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from agents.conversation import NEXT_STEP
from agents.plan_format import DESCRIPTION_CLOSE, DESCRIPTION_OPEN
from tests.agents.fake_llm import (
    RecordedRequest,
    Reply,
    json_error,
    llama_cpp_python_refusal,
    ollama_stream,
    openai_stream,
    sent_schema,
)

SOURCE = "notes/source.txt"
COPY = "notes/copy.txt"
USAGE = {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}
_ROLE = re.compile(r"^ORKET-ROLE: (\S+)", re.MULTILINE)
_CALL = re.compile(r"^ORKET-CALL: (\d+) (\S+) (\S+)$")


@dataclass(frozen=True)
class Call:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Answer:
    text: str
    calls: list[Call]


@dataclass
class Conversation:
    role: str
    answers: list[Answer] = field(default_factory=list)
    seen_source: str | None = None  # what the observation of read_file(SOURCE) showed


class ReactiveModel:
    """A FakeLLMServer responder; see the module docstring."""

    def __init__(self, *, protocol: str, native: bool = False, accepts_shape: str | None = None) -> None:
        if protocol not in ("openai", "ollama"):
            raise ValueError(protocol)
        self.protocol = protocol
        self.native = native
        # With a shape, every chat request must carry a response schema; one in another shape is refused
        # (as llama-cpp-python's server refuses json_schema) and does not count as a request answered.
        self.accepts_shape = accepts_shape
        self.conversations: dict[str, Conversation] = {}
        self.errors: list[str] = []
        self.chat_requests = 0
        self.answered = 0
        self.shapes: list[str | None] = []
        self.guard_saw: str | None = None  # what the guard's read of COPY showed
        self._lock = threading.Lock()
        self._ids = 0

    # -- serving -----------------------------------------------------------------------------------------

    def __call__(self, request: RecordedRequest) -> Reply:
        if not request.path.endswith(("/chat/completions", "/api/chat")):
            return json_error(404, "not found")
        with self._lock:
            self.chat_requests += 1
            body = request.json()
            if self.accepts_shape is not None:
                shape, schema = sent_schema(body)
                self.shapes.append(shape)
                if shape != self.accepts_shape or not isinstance(schema, dict):
                    return llama_cpp_python_refusal(str(shape))
            else:
                schema = None
            messages = body.get("messages") or []
            conversation = self._conversation(messages)
            if conversation is None:
                return json_error(400, "fake model: the conversation does not start with a system prompt and a card")
            self._check(conversation, messages[2:])
            self.observe(conversation, messages[2:])
            answer = self._next(conversation)
            if schema is not None:
                self._check_against_schema(answer, schema)
            conversation.answers.append(answer)
            self.answered += 1
            return self._reply(answer)

    def _conversation(self, messages: list[dict[str, Any]]) -> Conversation | None:
        if len(messages) < 2 or [m.get("role") for m in messages[:2]] != ["system", "user"]:
            self.errors.append(f"request {self.chat_requests}: no system prompt and card message at the start")
            return None
        key = hashlib.sha256(json.dumps(messages[:2], sort_keys=True).encode()).hexdigest()
        if key not in self.conversations:
            role = _ROLE.search(str(messages[0].get("content") or ""))
            self.conversations[key] = Conversation(role=role.group(1) if role else "")
        return self.conversations[key]

    # -- checking the conversation -----------------------------------------------------------------------

    def _check(self, conversation: Conversation, history: list[dict[str, Any]]) -> None:
        where = f"request {self.chat_requests} ({conversation.role}, step {len(conversation.answers) + 1})"
        position = 0
        for number, answer in enumerate(conversation.answers, 1):
            if position >= len(history):
                self.errors.append(f"{where}: the answer of step {number} and its observation are missing")
                return
            problem = self._check_answer(history[position], answer, number)
            if problem:
                self.errors.append(f"{where}: {problem}")
                return
            position += 1
            if self.native:
                position, problem = self._check_tool_messages(history, position, answer, number)
            else:
                position, problem = self._check_observation(history, position, answer, number, conversation)
            if problem:
                self.errors.append(f"{where}: {problem}")
                return
        if position != len(history):
            extra = [f"{m.get('role')}: {str(m.get('content'))[:80]!r}" for m in history[position:]]
            self.errors.append(f"{where}: {len(extra)} message(s) after the last observation: {extra}")

    def _check_answer(self, message: dict[str, Any], answer: Answer, number: int) -> str:
        if message.get("role") != "assistant":
            return f"expected the answer of step {number}, found a {message.get('role')} message"
        if not self.native:
            if message.get("content") != answer.text:
                return f"the assistant message of step {number} is not the answer given then"
            return ""
        sent = message.get("tool_calls") or []
        names = [str((call.get("function") or {}).get("name")) for call in sent]
        if names != [call.name for call in answer.calls]:
            return f"step {number}: the answer's tool calls came back as {names}"
        if self.protocol == "openai" and [call.get("id") for call in sent] != [call.id for call in answer.calls]:
            return f"step {number}: the answer's tool-call ids came back as {[call.get('id') for call in sent]}"
        return ""

    def _check_tool_messages(
        self, history: list[dict[str, Any]], position: int, answer: Answer, number: int
    ) -> tuple[int, str]:
        for index, call in enumerate(answer.calls, 1):
            if position >= len(history) or history[position].get("role") != "tool":
                return position, f"step {number}: the tool message of call {index} ({call.name}) is missing"
            message = history[position]
            if self.protocol == "openai" and message.get("tool_call_id") != call.id:
                return position, (
                    f"step {number}: tool message {index} answers {message.get('tool_call_id')!r}, not {call.id!r}"
                )
            if self.protocol == "ollama" and message.get("tool_name") != call.name:
                return position, (
                    f"step {number}: tool message {index} is for {message.get('tool_name')!r}, not {call.name!r}"
                )
            position += 1
        return position, ""

    def _check_observation(
        self,
        history: list[dict[str, Any]],
        position: int,
        answer: Answer,
        number: int,
        conversation: Conversation,
    ) -> tuple[int, str]:
        if position >= len(history):
            return position, f"the observation of step {number} is missing"
        message = history[position]
        content = str(message.get("content") or "")
        if message.get("role") != "user" or not content.startswith(f"ORKET-OBSERVATION: step {number}\n"):
            return position, f"expected the observation of step {number}, found {content[:80]!r}"
        sections = [match.groups() for line in content.split("\n") if (match := _CALL.match(line))]
        wanted = [(str(index), call.name, "executed") for index, call in enumerate(answer.calls, 1)]
        if sections != wanted:
            return position, f"the observation of step {number} reports {sections}, not {wanted}"
        return position + 1, ""

    def _check_against_schema(self, answer: Answer, schema: dict[str, Any]) -> None:
        try:
            jsonschema.validate(json.loads(answer.text), schema)
        except (ValueError, jsonschema.ValidationError) as invalid:
            self.errors.append(f"request {self.chat_requests}: my answer does not fit the schema sent: {invalid}")

    # -- what was observed ---------------------------------------------------------------------------------

    def _observed_file(self, history: list[dict[str, Any]], answer: Answer) -> str | None:
        """The content the observation of the latest answer's read_file showed (None when it is not there)."""
        if self.native:
            tools = [m for m in history if m.get("role") == "tool"]
            if not tools:
                return None
            return str(tools[-1].get("content") or "").split("\n", 1)[-1]
        if not history:
            return None
        content = str(history[-1].get("content") or "").removesuffix("\n\n" + NEXT_STEP)
        lines = content.split("\n")
        starts = [i for i, line in enumerate(lines) if _CALL.match(line) and " read_file " in line]
        if not starts:
            return None
        # The section: the call line, the arguments line, the result's header line, then the file's content.
        return "\n".join(lines[starts[-1] + 3 :])

    # -- answering -----------------------------------------------------------------------------------------

    def _next(self, conversation: Conversation) -> Answer:
        step = len(conversation.answers) + 1
        if conversation.role == "coder":
            return self._coder(conversation, step)
        if conversation.role == "integrity_guard":
            return self._guard(conversation, step)
        self.errors.append(f"request {self.chat_requests}: no part for role {conversation.role!r}")
        return self._answer([("finish_turn", {"summary": "Nothing for me to do here."})])

    def _coder(self, conversation: Conversation, step: int) -> Answer:
        if step == 1:
            read = ("read_file", {"path": SOURCE})
            return self._answer([read] if self.accepts_shape else [("list_directory", {"path": "notes"}), read])
        if step == 2:
            return self._answer([("write_file", {"path": COPY, "content": conversation.seen_source or "MISSING"})])
        if step == 3:
            reason = f"Copied {SOURCE} to {COPY}."
            return self._answer([("update_card_status", {"status": "code_review", "reason": reason})])
        self.errors.append(f"request {self.chat_requests}: the coder was asked again after handing the card on")
        return self._answer([("finish_turn", {"summary": "Already handed on."})])

    def _guard(self, conversation: Conversation, step: int) -> Answer:
        if step == 1:
            return self._answer([("read_file", {"path": COPY})])
        if step == 2:
            reason = f"{COPY} holds what {SOURCE} holds."
            return self._answer([("update_card_status", {"status": "done", "reason": reason})])
        self.errors.append(f"request {self.chat_requests}: the guard was asked again after finishing the card")
        return self._answer([("finish_turn", {"summary": "Already finished."})])

    def observe(self, conversation: Conversation, history: list[dict[str, Any]]) -> None:
        """Take what the latest observation showed into the conversation's state."""
        if not conversation.answers:
            return
        last = conversation.answers[-1]
        if not any(call.name == "read_file" for call in last.calls):
            return
        shown = self._observed_file(history, last)
        if shown is None:
            self.errors.append(f"request {self.chat_requests}: the read_file result is not in the observation")
            return
        path = next(call.arguments["path"] for call in last.calls if call.name == "read_file")
        if path == SOURCE:
            conversation.seen_source = shown
        elif path == COPY:
            self.guard_saw = shown

    def _answer(self, calls: list[tuple[str, dict[str, Any]]]) -> Answer:
        made = []
        for name, arguments in calls:
            self._ids += 1
            made.append(Call(id=f"call_reactive_{self._ids}", name=name, arguments=arguments))
        if self.native:
            return Answer(text="", calls=made)
        if self.accepts_shape:
            (call,) = made
            return Answer(text=json.dumps({"tool": call.name, "args": call.arguments}, ensure_ascii=False), calls=made)
        lines = "\n".join(json.dumps({"tool": c.name, "args": c.arguments}, ensure_ascii=False) for c in made)
        return Answer(text=f"Step by step: {', '.join(c.name for c in made)}.\n```json\n{lines}\n```", calls=made)

    def _reply(self, answer: Answer) -> Reply:
        pieces = [answer.text[i : i + 37] for i in range(0, len(answer.text), 37)]
        if self.protocol == "ollama":
            calls = [{"function": {"name": c.name, "arguments": c.arguments}} for c in answer.calls]
            return ollama_stream(pieces, tool_calls=calls if self.native else None)
        if not self.native:
            return openai_stream(pieces, usage=USAGE)
        deltas: list[list[dict[str, Any]]] = []
        for index, call in enumerate(answer.calls):
            arguments = json.dumps(call.arguments, ensure_ascii=False)
            half = len(arguments) // 2
            first = {"name": call.name, "arguments": arguments[:half]}
            deltas.append([{"index": index, "id": call.id, "type": "function", "function": first}])
            deltas.append([{"index": index, "function": {"arguments": arguments[half:]}}])
        return openai_stream([], tool_call_deltas=deltas, finish_reason="tool_calls", usage=USAGE)


class ReactivePlanner:
    """The architect of a planning turn (OpenAI protocol, JSON calls in text): checks that the planning
    prompt carries the epic's description, reads README.md, checks the observation shows that file, then
    answers propose_plan with `plan` (which may be malformed), again on every later step."""

    def __init__(self, description: str, plan: Any) -> None:
        self.description, self.plan = description.strip(), plan
        self.errors: list[str] = []
        self.requests = 0

    def __call__(self, request: RecordedRequest) -> Reply:
        if not request.path.endswith("/chat/completions"):
            return json_error(404, "not found")
        self.requests += 1
        messages = request.json()["messages"]
        first = "\n".join(str(message.get("content") or "") for message in messages[:2])
        if f"{DESCRIPTION_OPEN}\n{self.description}\n{DESCRIPTION_CLOSE}" not in first:
            self.errors.append("the planning prompt lacks the epic description")
        if "ORKET-PURPOSE: plan" not in first:
            self.errors.append("the planning prompt does not say it is for a plan")
        observed = [m for m in messages if m["role"] == "user" and "ORKET-OBSERVATION" in str(m.get("content"))]
        if not observed:
            call = {"tool": "read_file", "args": {"path": "README.md"}}
        else:
            if "hello from the repository" not in observed[0]["content"]:
                self.errors.append("the observation does not show the file the architect read")
            call = {"tool": "propose_plan", "args": {"cards": self.plan}}
        return openai_stream([f"```json\n{json.dumps(call)}\n```"], usage={"prompt_tokens": 50, "completion_tokens": 9})
