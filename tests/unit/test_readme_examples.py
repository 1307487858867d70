"""The README's shell examples are safe to run beside a running `make dev`, and run as typed.

Parsed from README.md itself: every fault an example switches on is switched off later in the same
block and carries a `ttl_seconds` (cleared by the emulator should that never run), nothing resets a
store or drops the caught mail, writes use test addresses of their own, and a `membersync` command
is typed as `.venv/bin/membersync` (not on PATH unless the venv is active).
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
# One shell command: continuation lines joined.
CONTINUATION = re.compile(r"\\\n\s*")
TRAILING_COMMENT = re.compile(r"\s+#\s.*$")


def shell_blocks() -> list[list[str]]:
    """Every ```sh block of the README, as its commands (comments dropped)."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for body in re.findall(r"^ *```sh\n(.*?)^ *```", text, flags=re.S | re.M):
        joined = CONTINUATION.sub(" ", body)
        commands = [TRAILING_COMMENT.sub("", line).strip() for line in joined.splitlines()]
        blocks.append([command for command in commands if command and not command.startswith("#")])
    return blocks


def test_the_readme_has_its_examples() -> None:
    commands = [command for block in shell_blocks() for command in block]
    assert any("/_sandbox/faults" in command for command in commands)
    assert any("customerCreate" in command for command in commands)


def test_no_example_resets_a_store_or_drops_the_mail() -> None:
    for block in shell_blocks():
        for command in block:
            assert "/_sandbox/reset" not in command, command
            assert not ("-X DELETE" in command and "/api/messages" in command), command


def test_every_fault_an_example_sets_is_cleared_later_in_its_block() -> None:
    for block in shell_blocks():
        for index, command in enumerate(block):
            if "/_sandbox/faults" in command and "-d '{}'" not in command:
                port = re.search(r"127\.0\.0\.1:(\d+)/_sandbox/faults", command)
                assert port is not None, command
                cleared = [
                    later
                    for later in block[index + 1 :]
                    if f"127.0.0.1:{port.group(1)}/_sandbox/faults" in later and "-d '{}'" in later
                ]
                assert cleared, f"fault left on: {command}"
                assert '"ttl_seconds"' in command, f"a fault without its safety net: {command}"
            if "/_sandbox/validation-rules" in command and "-X POST" in command:
                assert any(
                    "-X DELETE" in later and "/_sandbox/validation-rules" in later
                    for later in block[index + 1 :]
                ), f"validation rule left on: {command}"


def test_writes_use_test_records_and_remove_what_the_vendor_can_delete() -> None:
    for block in shell_blocks():
        text = "\n".join(block)
        for address in re.findall(r"[\w.+-]+@example\.com", text):
            # Written straight into an emulator (the intake's own demo registration is dev's use).
            written = any(
                address in command and "-X POST" in command and re.search(r"127\.0\.0\.1:801[123]/", command)
                for command in block
            )
            assert not written or address.startswith("sandbox-"), (
                f"a write to a real-looking address: {address}"
            )
        assert "customers/1/" not in text  # points are moved on the example's own member only
        for code in re.findall(r'"customerCode": "([^"]+)"', text):
            assert code.startswith("DEMO"), code
        if "customerCreate" in text:
            assert "customerDelete" in text
        if re.search(r"-X POST \S+/pos/customers ", text):
            assert re.search(r"-X DELETE \S+/pos/customers/\$MEMBER", text)


def test_membersync_commands_run_as_typed() -> None:
    for block in shell_blocks():
        for command in block:
            for found in re.finditer(r"(\S*)membersync (\w+)", command):
                prefix, _verb = found.groups()
                if "/" in command[: found.start()] and "127.0.0.1" in command:
                    continue  # a URL or address, not the command
                assert prefix == ".venv/bin/", command
