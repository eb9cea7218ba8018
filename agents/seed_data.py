"""The standard configuration Orket ships with: dialects, model profiles and the `standard` team."""

from __future__ import annotations

from typing import Any

_JSON_CALL = (
    'Answer with one JSON object per tool call, {"tool": "<name>", "args": {...}}, and nothing that is not '
    "part of a call or a short explanation."
)

DIALECTS: list[dict[str, Any]] = [
    {
        "name": "generic-json",
        "model_family": "generic",
        "output_format": "json",
        "constraints": [_JSON_CALL],
        "guardrail": "Never invent file contents you have not read; call read_file first.",
    },
    {
        "name": "qwen",
        "model_family": "qwen",
        "output_format": "native_tools",
        "constraints": ["Use the provided tools through tool calls; keep prose short."],
        "guardrail": "Do not repeat the same tool call; if a call was refused, change the approach.",
    },
    {
        "name": "llama3",
        "model_family": "llama3",
        "output_format": "json",
        "constraints": [_JSON_CALL, "Put JSON in a ```json fenced block when you also write prose."],
        "guardrail": "Stay on the card you were given; do not start other work.",
    },
    {
        "name": "deepseek-r1",
        "model_family": "deepseek-r1",
        "output_format": "json",
        "constraints": [_JSON_CALL, "Keep any reasoning inside <think> tags; tool calls go after it."],
        "guardrail": "A refused call will not succeed when repeated; read the refusal and change course.",
    },
    {
        "name": "phi",
        "model_family": "phi",
        "output_format": "json",
        "constraints": [_JSON_CALL, "Make one tool call at a time."],
        "guardrail": "Prefer small, verifiable steps.",
    },
]

MODEL_PROFILES: list[dict[str, Any]] = [
    {
        "name": "scripted-demo",
        "provider": "scripted",
        "base_url": "",
        "model": "scripted-demo",
        "temperature": 0.0,
        "seed": 7,
        "context_size": 8192,
        "max_tokens": 1024,
        "timeout_seconds": 30.0,
        "supports_native_tools": False,
        "supports_json_schema": False,
        "dialect": "generic-json",
    },
    {
        "name": "ollama-local",
        "provider": "ollama",
        "base_url": "http://127.0.0.1:11434",
        "model": "qwen2.5-coder:7b",
        "temperature": 0.2,
        "seed": 42,
        "context_size": 16384,
        "max_tokens": 2048,
        "timeout_seconds": 300.0,
        "supports_native_tools": True,
        "supports_json_schema": True,
        "dialect": "qwen",
    },
]

_FILE_TOOLS = ["read_file", "write_file", "list_directory", "delete_file"]
_CARD_TOOLS = ["get_card_context", "add_comment", "update_card_status", "add_note"]

STANDARD_TEAM: dict[str, Any] = {
    "name": "standard",
    "description": "An architect who plans, a coder who builds, and an integrity guard who verifies and finalizes.",
    "roles": [
        {
            "name": "architect",
            "intent": "Shape the work so that it can be built and verified in small, independent cards.",
            "responsibilities": [
                "Read the card context and the workspace before deciding.",
                "Split work that is too large into new cards in the same epic.",
                "Record design decisions as comments on the card.",
            ],
            "constraints": ["Keep components in their recognised folders when architecture governance is on."],
            "tools": [
                "read_file",
                "list_directory",
                "search_code",
                "write_file",
                *_CARD_TOOLS,
                "create_card",
                "finish_turn",
            ],
        },
        {
            "name": "coder",
            "intent": "Implement the card's requirements so that its acceptance criteria pass.",
            "responsibilities": [
                "Read the requirements, acceptance criteria and review feedback first.",
                "Write the code and its tests in the workspace.",
                "Move the card to code_review when the work is complete, with a comment saying what changed.",
            ],
            "constraints": ["Never edit verification fixtures.", "Do not mark your own work done."],
            "tools": [
                *_FILE_TOOLS,
                "edit_file",
                "search_code",
                "git_diff",
                *_CARD_TOOLS,
                "run_verification",
                "run_tests",
                "run_command",
                "finish_turn",
            ],
        },
        {
            "name": "integrity_guard",
            "intent": "Decide, on evidence, whether a card's work is finished.",
            "responsibilities": [
                "Run the verification and read its result.",
                "Move the card to done only when verification passes and the acceptance criteria are met.",
                "Otherwise send it back to in_progress with a comment that says exactly what is missing.",
            ],
            "constraints": ["Never finalize work your own seat did."],
            "tools": [
                "read_file",
                "list_directory",
                "search_code",
                "git_diff",
                *_CARD_TOOLS,
                "run_verification",
                "run_tests",
                "run_command",
                "finish_turn",
            ],
            "can_finalize": True,
        },
    ],
    "seats": [
        {"name": "lead_architect", "roles": ["architect"]},
        {"name": "senior_developer", "roles": ["coder"]},
        {"name": "quality_assurance", "roles": ["integrity_guard"]},
    ],
}

# The demo epic seeded into the demo project: four cards with dependencies; the card labelled
# `needs-changes` is sent back once by the integrity guard of the scripted team.
DEMO_EPIC: dict[str, Any] = {
    "name": "Greeting service",
    "description": "A tiny service that greets people, built card by card by the standard team.",
    "team": "standard",
    "cards": [
        {
            "summary": "Design the greeting service",
            "seat": "lead_architect",
            "priority": "high",
            "description": "Decide the modules and their responsibilities.",
            "acceptance_criteria": "A design note exists in the workspace.",
        },
        {
            "summary": "Implement the greeting formatter",
            "seat": "senior_developer",
            "priority": "medium",
            "description": "A function that formats a greeting for a name.",
            "acceptance_criteria": "Greets by name; has a test.",
            "depends_on": ["Design the greeting service"],
            "labels": ["needs-changes"],
        },
        {
            "summary": "Implement the name validator",
            "seat": "senior_developer",
            "priority": "medium",
            "description": "Refuse empty and overlong names.",
            "acceptance_criteria": "Empty names are refused; has a test.",
            "depends_on": ["Design the greeting service"],
        },
        {
            "summary": "Wire the greeting service together",
            "seat": "senior_developer",
            "priority": "low",
            "description": "Combine the validator and the formatter.",
            "acceptance_criteria": "Valid names are greeted, invalid ones refused; has a test.",
            "depends_on": ["Implement the greeting formatter", "Implement the name validator"],
        },
    ],
}
