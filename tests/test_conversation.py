"""Multi-turn matching: splitting, fillers, units and facts, context comparison, the decision
on one candidate, and the conversation eval harness on a tiny file with the hash embedder.

The conversations here are written for these tests (not taken from the evaluation sets)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semcache_core.conversation import (
    Conversation,
    Turn,
    compare_contexts,
    conversation_from_messages,
    focus,
    is_filler,
    match_conversation,
    prompt_from_messages,
    query_text,
    salient_text,
    search_text,
    turns_from_messages,
    units,
)
from semcache_core.guard import TrapGuard
from semcache_core.prompt import Prompt


def chat(*lines: str, system: str | None = None) -> Conversation:
    """``"u: ..."`` / ``"a: ..."`` lines as a conversation (the last line is the user's)."""
    messages = [{"role": "system", "content": system}] if system else []
    for line in lines:
        role, text = line.split(": ", 1)
        messages.append({"role": {"u": "user", "a": "assistant"}[role], "content": text})
    conversation = conversation_from_messages(messages)
    assert conversation is not None
    return conversation


def split_turns(turns: list[Turn]) -> Conversation | None:
    """The core's one rule (``Prompt.from_turns``), its semantic split."""
    return Prompt.from_turns("key", turns).conversation


# -- splitting -------------------------------------------------------------------------------------


def test_split_keeps_configuration_exact_and_history_textual() -> None:
    turns = [
        Turn("system", "You are a gardening helper."),
        Turn("user", "My tomato leaves curl."),
        Turn("assistant", "", extra={"tool_calls": [{"name": "lookup"}]}),
        Turn("tool", '{"disease": "none"}'),
        Turn("assistant", "No disease found."),
        Turn("user", "What now?"),
    ]
    conversation = split_turns(turns)
    assert conversation is not None
    assert conversation.query == "What now?"
    assert [t.text for t in conversation.history] == [
        "My tomato leaves curl.",
        "No disease found.",
    ]
    configuration = json.loads(conversation.configuration)
    assert ["before", "system", "You are a gardening helper.", None] in configuration
    assert ["before", "tool", '{"disease": "none"}', None] in configuration
    assert any(item[3] for item in configuration)  # the tool call is configuration


def test_configuration_ignores_where_small_talk_sits() -> None:
    a = chat("u: My tomato leaves curl.", "u: What now?", system="Gardening helper.")
    b = chat(
        "u: hello!",
        "a: Hi!",
        "u: My tomato leaves curl.",
        "u: What now?",
        system="Gardening helper.",
    )
    assert a.configuration == b.configuration
    exact = [
        prompt_from_messages([{"role": r, "content": t} for r, t in turns]).context
        for turns in (
            [("user", "My tomato leaves curl."), ("user", "What now?")],
            [("user", "hello!"), ("assistant", "Hi!"), ("user", "My tomato leaves curl."),
             ("user", "What now?")],
        )
    ]  # fmt: skip
    assert exact[0] != exact[1]


def test_non_text_parts_are_configuration() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.org/leaf.png"}}
    turns = turns_from_messages(
        [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}]
    )
    conversation = split_turns(turns)
    assert conversation is not None and conversation.query == "What is this?"
    assert "leaf.png" in conversation.configuration


def test_no_user_text_means_nothing_to_match() -> None:
    assert split_turns([Turn("system", "Be brief."), Turn("assistant", "Hello")]) is None
    assert split_turns([Turn("user", "   ")]) is None


def test_roles_of_frameworks_are_normalized() -> None:
    conversation = split_turns(
        [Turn("human", "I have a cat."), Turn("ai", "Nice."), Turn("human", "Food?")]
    )
    assert conversation is not None
    assert [t.role for t in conversation.history] == ["user", "assistant"]


# -- fillers, units, focus -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sentence",
    [
        "ok thanks",
        "Great, got it!",
        "Thank you so much.",
        "Hello there",
        "Anything else I can help with?",
        "lol",
    ],
)
def test_fillers(sentence: str) -> None:
    assert is_filler(sentence)


@pytest.mark.parametrize(
    "sentence",
    ["ok, the boiler is 12 years old", "No heating since Monday.", "Thanks, I rent the flat."],
)
def test_not_fillers(sentence: str) -> None:
    assert not is_filler(sentence)


def test_salient_text_drops_filler_sentences() -> None:
    assert (
        salient_text("Thanks! Anyway. My boiler is 12 years old.") == "My boiler is 12 years old."
    )


def test_light_units_carry_no_fact() -> None:
    conversation = chat("u: My boiler is 12 years old.", "a: Sounds frustrating.", "u: Fix it?")
    found = units(conversation)
    assert [u.light for u in found] == [False, True]


def test_focus_moves_leading_statements_into_history() -> None:
    conversation = chat("u: I rent.", "u: ok. The boiler is a Vaillant. Can I replace it myself?")
    focused = focus(conversation)
    assert focused.query == "Can I replace it myself?"
    assert focused.history[-1].text == "The boiler is a Vaillant."
    assert query_text(conversation) == "Can I replace it myself?"


def test_search_text_puts_the_question_first_and_recent_turns_next() -> None:
    conversation = chat(
        "u: Old topic about hats.",
        "a: Hats are fine.",
        "u: My dog limps.",
        "a: Which leg?",
        "u: The left one.",
        "u: Should I see a vet?",
    )
    text = search_text(conversation, window=2)
    assert text.startswith("Should I see a vet? | The left one. | Which leg?")
    assert "hats" not in text.lower()


# -- comparing contexts ----------------------------------------------------------------------------

BASE = (
    "u: Our heat pump is 8 years old and makes a grinding noise.",
    "a: A grinding noise often means a worn fan bearing.",
)


def test_reworded_context_agrees() -> None:
    a = chat(*BASE, "u: Can it be repaired?")
    b = chat(
        "u: The heat pump makes a grinding noise, it is 8 years old.",
        "a: Grinding usually points to a worn bearing in the fan.",
        "u: Can it be repaired?",
    )
    assert compare_contexts(focus(a), focus(b)).ok


def test_acknowledgements_do_not_count() -> None:
    a = chat(*BASE, "u: Can it be repaired?")
    b = chat(*BASE, "u: ok thanks", "a: You're welcome!", "u: Can it be repaired?")
    assert compare_contexts(a, b).ok


def test_an_earlier_unrelated_exchange_does_not_count() -> None:
    a = chat(*BASE, "u: Can it be repaired?")
    b = chat("u: Do you work on Sundays?", "a: Yes, from 10 to 4.", *BASE, "u: Can it be repaired?")
    assert compare_contexts(a, b).ok


def test_a_changed_number_is_named() -> None:
    a = chat(*BASE, "u: Can it be repaired?")
    b = chat(
        "u: Our heat pump is 18 years old and makes a grinding noise.",
        BASE[1],
        "u: Can it be repaired?",
    )
    verdict = compare_contexts(a, b)
    assert not verdict.ok
    assert verdict.reason in ("number", "changed_word")
    assert "18" in verdict.detail


def test_an_edited_word_is_named() -> None:
    a = chat("u: My cat is allergic to chicken.", "a: Noted.", "u: What food do you suggest?")
    b = chat("u: My cat is allergic to fish.", "a: Noted.", "u: What food do you suggest?")
    verdict = compare_contexts(a, b)
    assert not verdict.ok and verdict.reason == "changed_word"
    assert "chicken" in verdict.detail and "fish" in verdict.detail


def test_other_referent_is_rejected() -> None:
    a = chat(
        "u: I bought a wool sweater last week.", "a: Lovely, wool is warm.", "u: How do I wash it?"
    )
    b = chat(
        "u: I bought a cast iron pan last week.",
        "a: Great, cast iron lasts forever.",
        "u: How do I wash it?",
    )
    verdict = compare_contexts(a, b)
    assert not verdict.ok and verdict.reason in ("referent", "unmatched_turn")


def test_extra_turns_on_both_sides_are_rejected() -> None:
    a = chat("u: I have a Ford Focus.", *BASE, "u: Can it be repaired?")
    b = chat("u: I have a Toyota Corolla.", *BASE, "u: Can it be repaired?")
    assert not compare_contexts(a, b).ok


def test_configuration_must_match() -> None:
    a = chat(*BASE, "u: Can it be repaired?", system="You are a plumber.")
    b = chat(*BASE, "u: Can it be repaired?", system="You are a lawyer.")
    assert compare_contexts(a, b).reason == "configuration"


def test_no_history_against_history_is_rejected() -> None:
    a = chat("u: How much does it cost?")
    b = chat(
        "u: Tell me about the Gold membership.",
        "a: Gold gives free delivery.",
        "u: How much does it cost?",
    )
    assert not compare_contexts(a, b).ok


# -- the decision on one candidate -----------------------------------------------------------------


def fake_embed(table: dict[str, list[float]]):  # type: ignore[no-untyped-def]
    """Vectors by text prefix, so a test states the distances it needs."""

    def embed(texts):  # type: ignore[no-untyped-def]
        out = []
        for text in texts:
            key = next(k for k in table if text.startswith(k))
            out.append(np.asarray(table[key], dtype=float))
        return out

    return embed


def test_match_order_and_stages() -> None:
    a = chat(*BASE, "u: Can it be repaired?")
    b = chat(*BASE, "u: Is a repair possible?")
    near = fake_embed({"Can it": [1.0, 0.0], "Is a repair": [0.99, 0.14]})
    decision = match_conversation(a, b, embed=near, threshold=0.12, guard=TrapGuard())
    assert decision.ok and decision.query_distance is not None and decision.query_distance < 0.12

    far = fake_embed({"Can it": [1.0, 0.0], "Is a repair": [0.0, 1.0]})
    decision = match_conversation(a, b, embed=far, threshold=0.12, context_threshold=2.0)
    assert not decision.ok and decision.stage == "query_distance"

    decision = match_conversation(a, b, embed=near, threshold=0.12, context_distance=0.9)
    assert not decision.ok and decision.stage == "context_distance"


def test_identical_questions_are_not_embedded() -> None:
    a = chat(*BASE, "u: Can it be repaired?")
    b = chat("u: hi", "a: Hello!", *BASE, "u: Can it be repaired?")

    def embed(texts):  # type: ignore[no-untyped-def]
        raise AssertionError(f"embedded {texts}")

    decision = match_conversation(a, b, embed=embed, threshold=0.12, context_distance=0.1)
    assert decision.ok


def test_the_question_guard_runs() -> None:
    a = chat(*BASE, "u: Can it be repaired for under 200 euros?")
    b = chat(*BASE, "u: Can it be repaired for under 300 euros?")
    same = fake_embed({"Can it": [1.0, 0.0]})
    decision = match_conversation(
        a, b, embed=same, threshold=0.12, guard=TrapGuard(), context_distance=0.0
    )
    assert not decision.ok and decision.stage == "query_guard"


# -- the harness -----------------------------------------------------------------------------------


def _write_pairs(path: Path) -> Path:
    base = [
        {"role": "user", "content": "My heat pump is 8 years old and grinds."},
        {"role": "assistant", "content": "That is often a worn fan bearing."},
    ]
    ask = {"role": "user", "content": "Can it be repaired?"}
    rows = [
        {
            "a": [*base, ask],
            "b": [
                *base,
                {"role": "user", "content": "ok"},
                {"role": "assistant", "content": "Sure!"},
                ask,
            ],
            "same_answer": True,
            "subtype": "acknowledgements",
            "domain": "home",
        },
        {
            "a": [*base, ask],
            "b": [
                {"role": "user", "content": "Are you open on Sundays?"},
                {"role": "assistant", "content": "Yes, 10 to 4."},
                *base,
                ask,
            ],
            "same_answer": True,
            "subtype": "irrelevant_history",
            "domain": "home",
        },
        {
            "a": [*base, ask],
            "b": [
                {"role": "user", "content": "My heat pump is 18 years old and grinds."},
                base[1],
                ask,
            ],
            "same_answer": False,
            "subtype": "changed_detail",
            "domain": "home",
        },
        {
            "a": [*base, ask],
            "b": [*base, {"role": "user", "content": "Who makes the best dishwashers?"}],
            "same_answer": False,
            "subtype": "different_request",
            "domain": "home",
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_harness_on_a_tiny_file(tmp_path: Path) -> None:
    from semcache_core import quality_chat

    pairs_file = _write_pairs(tmp_path / "conversations_tiny.jsonl")
    assert quality_chat.is_conversation_file(pairs_file)
    out = tmp_path / "out"
    code = quality_chat.main(
        [str(pairs_file), "--embedder", "hash", "--out", str(out), "--context-threshold", "1.0"]
    )
    assert code == 0
    result = json.loads((out / "conversation_quality.json").read_text(encoding="utf-8"))
    tiny = result["files"]["tiny"]
    assert tiny["pairs"] == 4
    assert tiny["exact"]["should_hit_served"] == 0.0
    assert tiny["semantic"]["subtypes"]["acknowledgements"]["served"] == 1.0
    assert tiny["semantic"]["subtypes"]["changed_detail"]["served"] == 0.0
    assert tiny["semantic"]["subtypes"]["different_request"]["served"] == 0.0
    assert "| acknowledgements | should hit |" in (out / "conversation_quality.md").read_text(
        encoding="utf-8"
    )


def test_semcache_eval_dispatches_conversation_pairs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``semcache eval`` hands conversation pair files to the conversation harness and reports
    each part (here a "tuning" and a "blind" set) on its own."""
    from semcache_core.cli import main
    from semcache_core.quality_chat import wants_conversations

    pairs_file = _write_pairs(tmp_path / "conversations_tiny.jsonl")
    single = tmp_path / "single.jsonl"
    single.write_text(
        json.dumps({"a": "hi", "b": "hello", "same_answer": True, "category": "x"}) + "\n"
    )
    assert wants_conversations([str(pairs_file)])
    assert wants_conversations(["--set", f"tuning={pairs_file}"])
    assert not wants_conversations([str(single)])
    assert not wants_conversations([])
    with pytest.raises(SystemExit, match="cannot mix"):
        wants_conversations([str(pairs_file), str(single)])
    out = tmp_path / "out"
    sets = ["--set", f"tuning={pairs_file}", "--set", f"blind={pairs_file}"]
    code = main(
        ["eval", *sets, "--embedder", "hash", "--out", str(out), "--context-threshold", "1"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "tuning: should hit served" in printed and "blind: should hit served" in printed
    result = json.loads((out / "conversation_quality.json").read_text(encoding="utf-8"))
    assert set(result["files"]) == {"tuning", "blind"}


def test_harness_rejects_a_malformed_line(tmp_path: Path) -> None:
    from semcache_core.quality_chat import load_pairs

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(
            {
                "a": [{"role": "assistant", "content": "hi"}],
                "b": [],
                "same_answer": True,
                "subtype": "x",
            }
        )
        + "\n"
    )
    with pytest.raises(ValueError, match="last message must be a user message"):
        load_pairs(bad)


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    from semcache_core.quality_chat import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--context-threshold" in capsys.readouterr().out


def test_turns_with_few_common_words_align_by_meaning() -> None:
    a = chat("u: The dishwasher leaks water onto the floor.", "u: Is it covered?")
    b = chat("u: Puddles keep forming under my kitchen dishwasher.", "u: Is it covered?")
    assert compare_contexts(a, b).reason == "referent"  # words alone: no match
    near = fake_embed({"The dishwasher": [1.0, 0.0], "Puddles": [0.98, 0.2]})
    assert compare_contexts(a, b, embed=near).ok
    far = fake_embed({"The dishwasher": [1.0, 0.0], "Puddles": [0.0, 1.0]})
    assert not compare_contexts(a, b, embed=far).ok


def test_context_match_setting() -> None:
    from semcache_core.conversation import DEFAULT_CONTEXT_MATCH, validate_context_match
    from semcache_core.errors import SemcacheInputError

    assert DEFAULT_CONTEXT_MATCH == "semantic"
    assert validate_context_match("exact") == "exact"
    with pytest.raises(SemcacheInputError):
        validate_context_match("fuzzy")


# -- adapters --------------------------------------------------------------------------------------


def test_langchain_prompt_as_turns() -> None:
    from langchain_core.load import dumps
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    from langchain_semcache._prompts import split_prompt

    call = {"name": "weather", "args": {"city": "Oslo"}, "id": "c1"}
    history = [
        SystemMessage("You are terse."),
        HumanMessage("I fly to Oslo on Friday."),
        AIMessage("", tool_calls=[call], id="run-1"),
        ToolMessage("rain", tool_call_id="c1"),
        AIMessage("Rain is expected.", id="run-2", response_metadata={"model": "x"}),
    ]
    a = split_prompt(dumps([*history, HumanMessage("Pack an umbrella?")])).conversation
    rerun = [m.model_copy(update={"id": None}) for m in history]
    b = split_prompt(
        dumps([*rerun, HumanMessage("ok"), HumanMessage("Pack an umbrella?")])
    ).conversation
    assert a is not None and b is not None
    assert a.query == "Pack an umbrella?"
    assert a.configuration == b.configuration  # ids and metadata are not configuration
    assert "weather" in a.configuration and "rain" in a.configuration
    assert [t.text for t in a.history] == ["I fly to Oslo on Friday.", "Rain is expected."]
    assert split_prompt("plain completion prompt").conversation is None


def test_llamaindex_messages_as_turns() -> None:
    from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock

    from llamaindex_semcache._messages import chat_prompt

    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="You are terse."),
        ChatMessage(role=MessageRole.USER, content="My parrot plucks its feathers."),
        ChatMessage(role=MessageRole.ASSISTANT, content="How long has it been going on?"),
        ChatMessage(
            role=MessageRole.USER,
            blocks=[
                TextBlock(text="What is this spot?"),
                ImageBlock(url="https://example.org/p.png"),
            ],
        ),
    ]
    conversation = chat_prompt(messages).conversation
    assert conversation is not None
    assert conversation.query == "What is this spot?"
    assert "p.png" in conversation.configuration and "You are terse." in conversation.configuration
    assert [t.role for t in conversation.history] == ["user", "assistant"]
