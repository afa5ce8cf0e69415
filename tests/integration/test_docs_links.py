"""The documentation stays inside the repository: every Markdown file's links resolve in a clone.

No gateway, no database: this reads the Markdown files tracked under the repository root (README.md,
docs/, examples/, web/, tests/, bench/ ...) and fails when
  - a relative link (or image) escapes the repository root, is absolute (`/...`, `file:`), or names a
    file that does not exist; a `#fragment` into a Markdown file must name one of its headings;
  - any text, code included, still points at the design notes outside the repository (the `shared`
    folder's `design` notes beside the checkout).
Links to web pages (http/https/mailto) are not followed. Code blocks and code spans are not links.
"""

import re
import subprocess
from pathlib import Path

import pytest

from helpers import REPO

SKIP_DIRS = {".git", "build", "var", "node_modules"}
# Spelled in two parts so that this file does not itself name the path it looks for.
DESIGN_NOTES = "shared" + "/" + "design"
OUTSIDE = re.compile(re.escape(DESIGN_NOTES))
FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.S)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)=\"([^\"]+)\"", re.I)
WEB = re.compile(r"^(https?:|mailto:)", re.I)


def markdown_files():
    """Every .md file of the repository: git's list when this is a checkout, else a walk."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard",
                              "*.md"], capture_output=True, text=True, check=True).stdout
        files = [REPO / line for line in out.splitlines() if line]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in REPO.rglob("*.md") if not SKIP_DIRS.intersection(p.relative_to(REPO).parts)]
    return sorted(p for p in files if p.exists() and not SKIP_DIRS.intersection(p.relative_to(REPO).parts))


def strip_code(text):
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return CODE_SPAN.sub("", text)


def links(text):
    """(line number, target) of every link and image of a Markdown text, outside code."""
    body = strip_code(text)
    found = []
    for pattern in (INLINE_LINK, REF_DEF, HTML_LINK):
        for m in pattern.finditer(body):
            found.append((body.count("\n", 0, m.start()) + 1, m.group(1)))
    return found


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    h = re.sub(r"`|\*\*|__", "", heading.strip().lower())
    h = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", h)
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")


def anchors(path):
    seen, out = {}, set()
    text = FENCE.sub("", path.read_text(errors="replace"))  # headings keep their code spans
    for m in re.finditer(r"^ {0,3}#{1,6}\s+(.+?)\s*#*\s*$", text, re.M):
        s = slug(m.group(1))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def problems_of(path):
    rel = path.relative_to(REPO)
    text = path.read_text(errors="replace")
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if OUTSIDE.search(line):
            out.append(f"{rel}:{i}: points outside the repository ({DESIGN_NOTES}): {line.strip()[:120]}")
    for line_no, target in links(text):
        if WEB.match(target) or target.startswith("#") and path.suffix != ".md":
            continue
        where = f"{rel}:{line_no}: link '{target}'"
        if target.startswith(("/", "file:", "\\")) or re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
            out.append(f"{where} is absolute or not a relative file link")
            continue
        file_part, _, fragment = target.partition("#")
        file_part = file_part.split("?", 1)[0]
        dest = (path.parent / file_part).resolve() if file_part else path.resolve()
        try:
            dest.relative_to(REPO.resolve())
        except ValueError:
            out.append(f"{where} escapes the repository root")
            continue
        if not dest.exists():
            out.append(f"{where} names a file that does not exist ({dest.relative_to(REPO.resolve())})")
            continue
        if fragment and dest.suffix == ".md" and dest.is_file() and fragment.lower() not in anchors(dest):
            out.append(f"{where}: no heading '#{fragment}' in {dest.relative_to(REPO.resolve())}")
    return out


def test_markdown_links_stay_inside_the_repository_and_resolve():
    files = markdown_files()
    names = {p.relative_to(REPO).as_posix() for p in files}
    assert "README.md" in names and any(n.startswith("docs/") for n in names), sorted(names)
    problems = [p for f in files for p in problems_of(f)]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("text, expect", [
    (f"[api](../{DESIGN_NOTES}/api.md)", DESIGN_NOTES),
    (f"see `../{DESIGN_NOTES}/api.md`", DESIGN_NOTES),
    ("[up](../../outside.md)", "escapes the repository root"),
    ("[abs](/etc/passwd)", "absolute"),
    ("[gone](docs/no-such-file.md)", "does not exist"),
    ("[frag](README.md#no-such-heading)", "no heading"),
    ("[frag](docs/integration.md#b-replacing-wirepoll)", None),
    ("[ok](README.md) [web](https://example.com/x) `[code](../../x.md)`", None),
    ("```\n[in a fence](../../x.md)\n```\n", None),
])
def test_the_checker_itself(tmp_path, text, expect):
    """The checker finds each kind of bad link (and passes good ones), on a file placed at the root."""
    probe = REPO / f".links-probe-{tmp_path.name}.md"
    probe.write_text(text + "\n")
    try:
        found = problems_of(probe)
    finally:
        probe.unlink()
    if expect is None:
        assert found == []
    else:
        assert any(expect in p for p in found), found
