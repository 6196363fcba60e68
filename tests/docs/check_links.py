#!/usr/bin/env python3
"""Checks the links of copro's documentation (ctest `docs_links`; docs/design.md, "Map of the documentation").

Scans README.md, every *.md under docs/ (recursively), studies/README.md, sim/README.md and
topologies/README.md (or the files given on the command line) and reports, as FILE:LINE: message:

  - a markdown link `[text](target)`, image `![alt](target)`, autolink `<scheme:...>` or reference
    definition `[label]: target` whose relative target (after dropping `#anchor` and `?query`) does not
    exist, or resolves outside the repository (e.g. `../elsewhere/NOTES.md` from README.md);
  - an anchor (`file.md#section`, `#section`) that names no heading of the target markdown file (GitHub's
    slugs: lower case, punctuation dropped, spaces to hyphens, `-1`, `-2`, ... for repeats; explicit
    `<a name="...">` / `id="..."` anchors count too);
  - a bare reference to a markdown file in the text or in inline code (`docs/simulator.md`, `pxn.md`,
    `NOTES.md`) that exists neither relative to the file nor relative to the repository root, or that
    leaves the repository;
  - any path in a fenced code block that climbs out of the repository (`../elsewhere/...`);
  - a malformed http(s) or mailto link (citations are allowed, but must be well formed).

Exit status: 0 when nothing is wrong, 1 otherwise (2 for a usage error). Python 3 standard library only.
`--self-test` checks the checker on a small synthetic tree.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import unicodedata
from typing import Dict, Iterator, List, Optional, Set, Tuple
from urllib.parse import unquote, urlsplit

# Files scanned by default, relative to the repository root (docs/ is scanned recursively).
DEFAULT_FILES = ["README.md", "studies/README.md", "sim/README.md", "topologies/README.md"]
DEFAULT_DIRS = ["docs"]

FENCE_RE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
HEADING_RE = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR_RE = re.compile(r"""<a\s+[^>]*?(?:name|id)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
REF_DEF_RE = re.compile(r"^\s{0,3}\[([^\]]+)\]:\s*(<[^>]*>|\S+)")
AUTOLINK_RE = re.compile(r"<((?:https?|mailto):[^<>\s]*)>", re.IGNORECASE)
INLINE_CODE_RE = re.compile(r"(`+)(.+?)\1")
# A bare reference to a markdown file: a path of word characters, dots, hyphens and slashes ending in .md,
# not part of a longer word, path or URL.
BARE_MD_RE = re.compile(r"(?<![\w/.:~%@-])((?:\.{1,2}/)*[\w.-]*[\w-](?:/[\w.-]+)*\.md)(#[\w-]+)?(?![\w/-])")
# A relative path climbing out of a folder (checked in code blocks too).
CLIMB_RE = re.compile(r"(?<![\w.:/-])((?:\.\./)+[\w.-][\w./-]*)")
SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class Problem:
    def __init__(self, path: str, line: int, message: str) -> None:
        self.path, self.line, self.message = path, line, message

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def github_slug(text: str) -> str:
    """The anchor GitHub gives a heading whose (markdown) text is `text`."""
    # Rendered text: links keep their text, images their alt text, code spans their content, emphasis and
    # HTML tags go.
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"!?\[([^\]]*)\]\[[^\]]*\]", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("`", "")
    text = text.strip().lower()
    out = []
    for ch in text:
        if ch in (" ", "-", "_"):
            out.append("-" if ch == " " else ch)
        elif ch.isalnum() or unicodedata.category(ch).startswith("M"):
            out.append(ch)
        # everything else (punctuation, symbols) is dropped
    return "".join(out)


def split_fenced(lines: List[str]) -> List[bool]:
    """in_code[i] is True for lines inside (or delimiting) a fenced code block."""
    in_code = []
    fence: Optional[str] = None
    for line in lines:
        m = FENCE_RE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
                in_code.append(True)
            else:
                in_code.append(False)
        else:
            in_code.append(True)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and line.strip() == m.group(1):
                fence = None
    return in_code


class AnchorCache:
    def __init__(self) -> None:
        self._cache: Dict[str, Set[str]] = {}

    def anchors(self, path: str) -> Set[str]:
        if path not in self._cache:
            self._cache[path] = self._read(path)
        return self._cache[path]

    @staticmethod
    def _read(path: str) -> Set[str]:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError):
            return set()
        found: Set[str] = set()
        counts: Dict[str, int] = {}
        in_code = split_fenced(lines)
        for i, line in enumerate(lines):
            if in_code[i]:
                continue
            for m in HTML_ANCHOR_RE.finditer(line):
                found.add(m.group(1))
            m = HEADING_RE.match(line)
            if not m:
                continue
            slug = github_slug(m.group(2))
            n = counts.get(slug, 0)
            counts[slug] = n + 1
            found.add(slug if n == 0 else f"{slug}-{n}")
        return found


def find_links(line: str) -> Iterator[str]:
    """Targets of inline links and images `[text](target "title")` on one line (code spans removed)."""
    i = 0
    while True:
        j = line.find("](", i)
        if j < 0:
            return
        k = j + 2
        while k < len(line) and line[k] == " ":
            k += 1
        if k < len(line) and line[k] == "<":
            end = line.find(">", k)
            if end < 0:
                i = j + 2
                continue
            yield line[k + 1 : end]
            i = end + 1
            continue
        depth = 0
        start = k
        while k < len(line):
            c = line[k]
            if c == "\\":
                k += 2
                continue
            if c == "(":
                depth += 1
            elif c == ")":
                if depth == 0:
                    break
                depth -= 1
            elif c == " " and depth == 0:
                break  # a title follows
            k += 1
        target = line[start:k]
        if target:
            yield target
        i = k


def check_url(url: str) -> Optional[str]:
    """Why an http(s)/mailto URL is malformed, or None."""
    if any(c.isspace() for c in url):
        return "contains white space"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        host = parts.hostname or ""
        if not parts.netloc or not host:
            return "has no host"
        if not re.fullmatch(r"[A-Za-z0-9.-]+", host) or ".." in host or host.startswith(".") or host.endswith("."):
            return f"has a malformed host '{host}'"
        if "." not in host and host != "localhost":
            return f"has a host without a domain ('{host}')"
        try:
            parts.port  # noqa: B018 (raises ValueError for a bad port)
        except ValueError:
            return "has a malformed port"
        return None
    if scheme == "mailto":
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", parts.path):
            return "is not an e-mail address"
        return None
    return None


class Checker:
    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self.anchors = AnchorCache()
        self.problems: List[Problem] = []

    def rel(self, path: str) -> str:
        return os.path.relpath(path, self.root)

    def inside(self, path: str) -> bool:
        real = os.path.realpath(path)
        return real == self.root or real.startswith(self.root + os.sep)

    def report(self, path: str, line: int, message: str) -> None:
        self.problems.append(Problem(self.rel(path), line, message))

    def check_anchor(self, src: str, line: int, target_file: str, anchor: str, shown: str) -> None:
        if not anchor or not target_file.endswith(".md") or not os.path.isfile(target_file):
            return
        if unquote(anchor) not in self.anchors.anchors(target_file):
            self.report(src, line, f"link '{shown}': no heading of {self.rel(target_file)} has the anchor '#{anchor}'")

    def check_target(self, src: str, line: int, target: str) -> None:
        """A link target from [text](target), <autolink> or [label]: target."""
        target = target.strip()
        if target.startswith("<") and target.endswith(">"):
            target = target[1:-1]
        if not target:
            self.report(src, line, "empty link target")
            return
        if SCHEME_RE.match(target):
            scheme = target.split(":", 1)[0].lower()
            if scheme in ("http", "https", "mailto"):
                why = check_url(target)
                if why:
                    self.report(src, line, f"link '{target}' {why}")
            elif scheme == "file":
                self.report(src, line, f"link '{target}' points to a local file outside the repository")
            return
        if target.startswith("//"):
            self.report(src, line, f"link '{target}' has no scheme (write https://...)")
            return
        path_part, _, anchor = target.partition("#")
        path_part = path_part.split("?", 1)[0]
        if not path_part:  # same-file anchor
            self.check_anchor(src, line, src, anchor, target)
            return
        decoded = unquote(path_part)
        base = self.root if decoded.startswith("/") else os.path.dirname(src)
        resolved = os.path.normpath(os.path.join(base, decoded.lstrip("/")))
        if not self.inside(resolved):
            self.report(src, line, f"link '{target}' resolves outside the repository")
            return
        if not os.path.exists(resolved):
            self.report(src, line, f"link '{target}': {self.rel(resolved)} does not exist")
            return
        self.check_anchor(src, line, resolved, anchor, target)

    def check_bare(self, src: str, line: int, ref: str, anchor: str) -> None:
        """A bare mention of a markdown file: relative to the file, else to the repository root."""
        candidates = [os.path.normpath(os.path.join(os.path.dirname(src), ref))]
        if not ref.startswith("."):
            candidates.append(os.path.normpath(os.path.join(self.root, ref)))
        inside = [c for c in candidates if self.inside(c)]
        if not inside:
            self.report(src, line, f"reference '{ref}' resolves outside the repository")
            return
        for c in inside:
            if os.path.isfile(c):
                if anchor:
                    self.check_anchor(src, line, c, anchor.lstrip("#"), ref + anchor)
                return
        self.report(src, line, f"reference '{ref}' names no file of the repository")

    def check_climb(self, src: str, line: int, text: str, skip_md: bool = False) -> None:
        for m in CLIMB_RE.finditer(text):
            p = m.group(1).rstrip(".,;:")
            if skip_md and BARE_MD_RE.fullmatch(p):
                continue  # reported by check_bare
            if not self.inside(os.path.normpath(os.path.join(os.path.dirname(src), p))):
                self.report(src, line, f"path '{p}' leaves the repository")

    def check_file(self, src: str) -> None:
        try:
            with open(src, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            self.report(src, 0, f"cannot read: {e}")
            return
        in_code = split_fenced(lines)
        for i, line in enumerate(lines):
            n = i + 1
            if in_code[i]:
                self.check_climb(src, n, line)
                continue
            m = REF_DEF_RE.match(line)
            if m:
                self.check_target(src, n, m.group(2))
                continue
            no_code = INLINE_CODE_RE.sub(lambda c: " " * len(c.group(0)), line)
            link_spans: List[Tuple[int, int]] = []
            for target in find_links(no_code):
                self.check_target(src, n, target)
            for m2 in re.finditer(r"!?\[[^\]]*\]\([^)]*\)", no_code):
                link_spans.append(m2.span())  # the whole link: its text names what its target checks
            for m2 in AUTOLINK_RE.finditer(no_code):
                self.check_target(src, n, m2.group(1))
                link_spans.append(m2.span())
            # Bare references: in the text (outside link targets and URLs) and inside code spans.
            text = line
            for a, b in link_spans:
                text = text[:a] + " " * (b - a) + text[b:]
            text = re.sub(r"(?:https?|mailto|file|chrome)://\S+|(?:https?|mailto):\S+", lambda u: " " * len(u.group(0)), text)
            for m3 in BARE_MD_RE.finditer(text):
                self.check_bare(src, n, m3.group(1), m3.group(2) or "")
            self.check_climb(src, n, text, skip_md=True)


def default_files(root: str) -> List[str]:
    files = [os.path.join(root, f) for f in DEFAULT_FILES if os.path.isfile(os.path.join(root, f))]
    for d in DEFAULT_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, d)):
            dirnames.sort()
            files.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".md"))
    return files


def run(root: str, files: List[str]) -> List[Problem]:
    checker = Checker(root)
    for f in files:
        checker.check_file(os.path.abspath(f))
    return checker.problems


def self_test() -> int:
    """The checker on a synthetic tree: what must pass passes, what must fail fails."""
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "repo")
        os.makedirs(os.path.join(root, "docs", "studies"))
        os.makedirs(os.path.join(tmp, "elsewhere"))
        with open(os.path.join(tmp, "elsewhere", "NOTES.md"), "w", encoding="utf-8") as f:
            f.write("# outside\n")

        def write(rel: str, text: str) -> str:
            p = os.path.join(root, rel)
            with open(p, "w", encoding="utf-8") as f:
                f.write(text)
            return p

        write("docs/a.md", "# The simulator: copro-sim\n\n## Executor (`Simulator::run`)\n\n## Step\n\n## Step\n"
                           "```sh\n# not a heading\n```\n<a name=\"custom\"></a>\n")
        write("docs/studies/README.md", "# Studies\n")
        good = write("docs/good.md", "\n".join([
            "# Good",
            "[a](a.md) [a](./a.md#the-simulator-copro-sim) [b](a.md#executor-simulatorrun)",
            "[c](a.md#step-1) [d](a.md#custom) [e](#good) [f](studies/README.md) [g](studies/)",
            "[h](../docs/a.md) [i](/docs/a.md) [j](https://arxiv.org/abs/2412.19437) [k](mailto:a@b.org)",
            "<https://developer.nvidia.com/blog/x/> see docs/a.md and `a.md` and a.md#step, e.g. docs.rs",
            "[ref]: a.md#step",
            "```sh",
            "cat ../docs/a.md ../README.md",
            "```",
        ]) + "\n")
        bad_cases = {
            "See `../../elsewhere/NOTES.md` for the architecture.": "outside",
            "See [design](../../elsewhere/NOTES.md).": "outside",
            "The folder ../../elsewhere/ is not ours.": "leaves the repository",
            "See NOTES.md, \"Programs\".": "names no file",
            "[x](missing.md)": "does not exist",
            "[missing.md](missing.md)": "does not exist",
            "[x](a.md#no-such-heading)": "anchor",
            "[x](#nothing-here)": "anchor",
            "[x](<https://exa mple.com>)": "white space",
            "[x](https://localhost-less)": "host",
            "[x](http://)": "no host",
            "[x](mailto:nobody)": "e-mail",
            "[ref]: ../../elsewhere/NOTES.md": "outside",
            "see docs/collectives.md": "names no file",
        }
        problems = run(root, [good])
        if problems:
            failures.append("good file flagged: " + "; ".join(map(str, problems)))
        for text, expect in bad_cases.items():
            p = write("docs/bad.md", "# Bad\n" + text + "\n")
            problems = run(root, [p])
            if len(problems) != 1 or expect not in problems[0].message or problems[0].line != 2:
                failures.append(f"{text!r}: expected one problem on line 2 mentioning '{expect}', got "
                                + (("; ".join(map(str, problems))) or "none"))
        p = write("docs/bad.md", "# Bad\n```\ncp ../../elsewhere/NOTES.md .\n```\n")
        problems = run(root, [p])
        if len(problems) != 1 or "leaves the repository" not in problems[0].message:
            failures.append("climb in a code block: got " + ("; ".join(map(str, problems)) or "none"))
    slugs = {"The simulator: copro-sim": "the-simulator-copro-sim", "Executor (`Simulator::run`)": "executor-simulatorrun",
             "What-if studies": "what-if-studies", "Ops & lanes_2": "ops--lanes_2",
             "[Link](x.md) text": "link-text", "Max-min flows, routing": "max-min-flows-routing"}
    for text, want in slugs.items():
        if github_slug(text) != want:
            failures.append(f"slug of {text!r}: {github_slug(text)!r}, expected {want!r}")
    for f in failures:
        print("self-test: " + f)
    print("self-test: " + ("FAILED" if failures else "ok"))
    return 1 if failures else 0


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", help="markdown files (default: README.md, docs/**/*.md, studies/, sim/, "
                                            "topologies/ READMEs)")
    ap.add_argument("--root", default=os.path.normpath(os.path.join(here, "..", "..")),
                    help="repository root (default: two folders above this script)")
    ap.add_argument("--self-test", action="store_true", help="check the checker on a synthetic tree")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    root = os.path.abspath(args.root)
    if not os.path.isfile(os.path.join(root, "README.md")):
        print(f"check_links: {root} has no README.md; pass --root", file=sys.stderr)
        return 2
    files = args.files or default_files(root)
    problems = run(root, files)
    for p in problems:
        print(p)
    print(f"check_links: {len(files)} files, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
