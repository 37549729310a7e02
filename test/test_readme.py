"""README leads (issue 11.8): short, every doc page linked, links and commands true, no copies."""
import re
import shlex
from pathlib import Path

import pytest

from sim2real.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)


def _commands(text: str, program: str) -> list[list[str]]:
    """Command lines in code blocks starting with ``program`` (continuations joined, comments dropped)."""
    out = []
    for block in _code_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith(program + " "):
                out.append(shlex.split(line, comments=True))
    return out


def test_readme_is_a_five_minute_page():
    assert len(README.read_text().splitlines()) <= 250


@pytest.mark.parametrize("page", [README] + DOCS, ids=lambda p: p.name)
def test_relative_links_exist(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.name} links to {target}, which is not in the repository"


def test_every_doc_page_is_linked_from_readme_and_no_verbatim_copies_remain():
    linked = {(ROOT / t.split("#")[0]).resolve() for t in LINK.findall(README.read_text())}
    for page in DOCS:
        assert page.resolve() in linked, f"{page.relative_to(ROOT)} is not linked from README"
        assert not page.name.startswith("readme_"), f"{page.name}: a copy of a README section"


def test_no_reference_to_files_outside_the_repository():
    for page in [README] + DOCS:
        text = page.read_text()
        assert "INTERFACES" not in text and "shared/research" not in text, page.name


def _paragraphs(text: str) -> set:
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {" ".join(p.split()) for p in text.split("\n\n") if len(" ".join(p.split())) > 80}


def test_no_paragraph_of_readme_is_repeated_in_docs():
    mine = _paragraphs(README.read_text())
    for page in DOCS:
        same = mine & _paragraphs(page.read_text())
        assert not same, f"{page.name} repeats README: {sorted(same)[0][:80]}..."


def test_readme_sim2real_commands_parse_with_the_real_parser():
    commands = _commands(README.read_text(), "sim2real")
    assert len(commands) >= 10
    parser = build_parser()
    for argv in commands:
        parser.parse_args(argv[1:])  # SystemExit (argparse error) fails the test


def test_readme_make_targets_and_modules_exist():
    text = README.read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))
    for argv in _commands(text, "make"):
        assert argv[1] in targets, f"make {argv[1]}: no such target"
    import importlib.util
    for argv in _commands(text, "python"):
        if argv[1] == "-m":
            assert importlib.util.find_spec(argv[2]) is not None, argv


def test_readme_launch_arguments_are_declared():
    from test_ros_launch import declared_arguments

    for argv in _commands(README.read_text(), "ros2"):
        declared = {a[0] for a in declared_arguments(ROOT / "launch" / argv[3])}
        for arg in argv[4:]:
            assert arg.split(":=")[0] in declared, f"{argv[3]} has no argument {arg}"
