"""The documentation is checked like code: its links resolve and its commands parse.

- every relative Markdown link in README.md, docs/*.md and CHANGELOG.md points at a file that
  exists, and a `#anchor` at a heading of that file (GitHub's anchor rules);
- every `jetti-relay ...` command shown in a fenced code block or in inline code (also
  `./run jetti-relay ...`) names real subcommands and real options of the click command
  (`ops.cli.main`), walked parameter by parameter: nothing runs, and placeholders (`KEY`, `FILE`,
  `<filters>`, `[--json]`, `a|b` alternatives) are read as such.

A renamed option or page therefore fails here, not in a reader's terminal.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from ops.cli import main as jetti_relay

ROOT = Path(__file__).resolve().parents[2]

FENCE = re.compile(r"^(```|~~~)([^\n]*)\n(.*?)^\1[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
# A command starts at `jetti-relay` (or `./run jetti-relay`) at the start of a line or after a
# shell separator, e.g. `docker compose exec worker jetti-relay health`, `cat f | jetti-relay`.
COMMAND_START = re.compile(r"(?:^|(?<=[\s|;&(]))(?:\./run\s+)?jetti-relay(?=\s|$)")
# Languages whose code blocks hold no shell commands (`text`: trees and diagrams).
NOT_SHELL = {"python", "py", "toml", "json", "yaml", "yml", "lua", "ini", "text"}
SHELL_STOP = {"|", "||", "&&", ";", ">", ">>", "<", "2>", "2>&1", "&"}


def documentation_files() -> list[Path]:
    """README.md, every page in docs/ and CHANGELOG.md."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "CHANGELOG.md"]


def without_code(text: str) -> str:
    """`text` with fenced blocks and inline code blanked (links inside code are not links)."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return INLINE_CODE.sub("", text)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)  # code spans keep their text
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of `path`'s headings, duplicates numbered as GitHub does."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for match in HEADING.finditer(without_code_blocks(path.read_text(encoding="utf-8"))):
        slug = github_anchor(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def without_code_blocks(text: str) -> str:
    """`text` without its fenced blocks (a `# comment` in a shell block is not a heading)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def link_problems(path: Path) -> list[str]:
    """Every relative link of `path` whose file or heading does not exist."""
    problems: list[str] = []
    for target in LINK.findall(without_code(path.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.IGNORECASE):
            continue  # http:, https:, mailto:: not checked offline
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        if not destination.exists():
            problems.append(f"{path.name}: link to {target}: no such file")
            continue
        if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            problems.append(f"{path.name}: link to {target}: no such heading")
    return problems


@dataclass(frozen=True)
class Shown:
    """A `jetti-relay` command as a page shows it."""

    where: str
    text: str


def shown_commands(path: Path) -> Iterator[Shown]:
    """The `jetti-relay ...` commands of `path`'s shell code blocks and inline code."""
    text = path.read_text(encoding="utf-8")
    for block in FENCE.finditer(text):
        if block.group(2).strip().lower() in NOT_SHELL:
            continue
        line_no = text.count("\n", 0, block.start()) + 2
        for offset, line in enumerate(block.group(3).replace("\\\n", " \n").splitlines()):
            line = re.sub(r"(^|\s)#.*$", "", line)  # shell comments
            for command in _commands_in(line):
                yield Shown(f"{path.name}:{line_no + offset}", command)
    for span in INLINE_CODE.finditer(without_code_blocks(text)):
        code = span.group(2).strip()
        if re.match(r"^(\./run\s+)?jetti-relay(\s|$)", code):
            line_no = text.count("\n", 0, span.start()) + 1
            yield Shown(f"{path.name}:{line_no}", code.replace("\\|", "|"))


def _commands_in(line: str) -> Iterator[str]:
    starts = [m.start() for m in COMMAND_START.finditer(line)]
    for start in starts:
        yield line[start:].strip()


def _tokens(command: str) -> list[str]:
    try:
        tokens = shlex.split(command)
    except ValueError:
        tokens = command.split()
    if tokens[:1] == ["./run"]:
        tokens = tokens[1:]
    assert tokens[0] == "jetti-relay", command
    return tokens[1:]


def _is_placeholder(token: str) -> bool:
    """KEY, FILE, N, <filters>, ..., `$EDITOR`: words a reader replaces."""
    bare = token.strip("[]().,:")
    return (
        not bare
        or bare.startswith(("<", "$"))
        or "..." in token
        or bool(re.fullmatch(r"[A-Z][A-Z0-9_]*(\|[A-Z][A-Z0-9_]*)*", bare))
    )


def _option(command: click.Command, name: str) -> click.Parameter | None:
    for param in command.params:
        if isinstance(param, click.Option) and name in (*param.opts, *param.secondary_opts):
            return param
    return None


def _takes_value(param: click.Parameter) -> bool:
    return isinstance(param, click.Option) and not param.is_flag and not param.count


def command_problems(command_line: str, root: click.Group = jetti_relay) -> list[str]:
    """What is wrong with `command_line` against the real click command ([] when it parses)."""
    problems: list[str] = []
    ctx = click.Context(root, info_name="jetti-relay")
    command: click.Command = root
    path = "jetti-relay"
    depth = 0  # inside [optional] brackets
    skip_value = False
    for raw in _tokens(command_line):
        if raw in SHELL_STOP and depth == 0:
            break
        opening, closing = raw.count("["), raw.count("]")
        token = raw.strip("[]").rstrip(".")
        inside = depth > 0 or opening > 0
        depth = max(0, depth + opening - closing)
        if skip_value:
            skip_value = False
            continue
        if not token or token == "|" or _is_placeholder(token):
            continue
        if token.startswith("-") and token != "-":
            name = token.split("=", 1)[0]
            if name == "--help":
                continue
            param = _option(command, name)
            if param is None:
                problems.append(f"{path} has no option {name}")
            elif _takes_value(param) and "=" not in token:
                skip_value = True
            continue
        if isinstance(command, click.Group):
            names = token.split("|")
            for name in names:
                if command.get_command(ctx, name) is None:
                    problems.append(f"{path} has no subcommand {name!r}")
            if len(names) > 1 or inside:
                continue  # alternatives: each one checked, none entered
            sub = command.get_command(ctx, token)
            if sub is None:
                break
            ctx = click.Context(sub, info_name=token, parent=ctx)
            command, path = sub, f"{path} {token}"
        # A leaf command's other words are its arguments.
    return problems


def test_every_relative_link_resolves() -> None:
    """Every relative link of the README, docs/ and the changelog reaches a file and heading."""
    problems = [p for path in documentation_files() for p in link_problems(path)]
    assert problems == []


def test_every_jetti_relay_command_shown_parses() -> None:
    """Every `jetti-relay ...` line the documentation shows names real subcommands and options."""
    shown = [c for path in documentation_files() for c in shown_commands(path)]
    assert len(shown) > 50  # the pages do show commands: the reader found them
    problems = [f"{c.where}: `{c.text}`: {p}" for c in shown for p in command_problems(c.text)]
    assert problems == []


def test_the_check_catches_a_broken_link_and_a_bogus_option(tmp_path: Path) -> None:
    """A link to a missing page or heading and an option no command has are reported."""
    (tmp_path / "other.md").write_text("# Other page\n\n## Real heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "See [the other page](other.md#real-heading), [missing](missing.md),\n"
        "[no heading](other.md#nowhere) and [here](#page).\n\n"
        "```sh\njetti-relay dlq list --reason rejected --bogus-option\n```\n\n"
        "Also `jetti-relay dlq lst` and `./run jetti-relay order show KEY --json`.\n"
    )
    assert link_problems(page) == [
        "page.md: link to missing.md: no such file",
        "page.md: link to other.md#nowhere: no such heading",
    ]
    problems = {c.text: command_problems(c.text) for c in shown_commands(page)}
    assert problems == {
        "jetti-relay dlq list --reason rejected --bogus-option": [
            "jetti-relay dlq list has no option --bogus-option"
        ],
        "jetti-relay dlq lst": ["jetti-relay dlq has no subcommand 'lst'"],
        "./run jetti-relay order show KEY --json": [],
    }


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ('Dead letters and "where is order X?"', "dead-letters-and-where-is-order-x"),
        ("Upgrading a store: `migrate-keys`", "upgrading-a-store-migrate-keys"),
        ("Batching: before and after", "batching-before-and-after"),
    ],
)
def test_anchors_follow_github(heading: str, anchor: str) -> None:
    """Anchors are made as GitHub makes them, so a link that works here works there."""
    assert github_anchor(heading) == anchor


def test_the_producer_api_is_documented() -> None:
    """Every name the producer library exports is described in docs/producers.md."""
    import producers

    page = (ROOT / "docs" / "producers.md").read_text(encoding="utf-8")
    missing = [name for name in producers.__all__ if f"`{name}" not in page]
    assert missing == []


# A repository path as code, comments, alerts and compose files cite one.
REPO_PATH = re.compile(
    r"(?<![\w/.-])((?:worker|ops|producers|tests|docs)/[\w/.-]*\w\.(?:py|md|lua|ya?ml|toml|jsonl?))"
)
# A pointer at a README section ("README, Operations", "README's Settings table"): the reference
# moved to docs/, and such pointers outlived it once.
README_SECTION = re.compile(
    r"README(?:[,:] [A-Z\"]"
    r"|'s (?:Settings|Operations|Durability|contract|pipeline|chaos|[a-z]+ section))"
)


def _tracked_text_files() -> Iterator[tuple[str, str]]:
    import subprocess

    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in listed:
        path = ROOT / name
        if not path.is_file() or path.suffix in {".png", ".svg"}:
            continue
        try:
            yield name, path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue


def test_every_repository_path_cited_exists() -> None:
    """A file path cited anywhere in the repository (a comment, a docstring, an alert, a compose
    file, a page) names a file that exists: moving a module moves its citations too."""
    missing = [
        f"{name}: {cited}"
        for name, text in _tracked_text_files()
        for cited in REPO_PATH.findall(text)
        if not (ROOT / cited).exists()
    ]
    assert missing == []


def test_nothing_points_at_a_readme_section() -> None:
    """The README is a short start; its old sections live in docs/. Code, configuration and
    pages cite the docs/ page instead of "README, Operations"."""
    found = [
        f"{name}:{text.count(chr(10), 0, m.start()) + 1}"
        for name, text in _tracked_text_files()
        if name != "tests/deploy/test_docs.py"
        for m in README_SECTION.finditer(text)
    ]
    assert found == []
