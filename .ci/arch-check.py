#!/usr/bin/env python3
"""Architecture checks over the crates' Rust sources (Python 3 stdlib only).

    arch-check.py cycles SRC_DIR...
        Fails when modules of one crate import each other, directly or
        through a longer circle. Each SRC_DIR is one crate's src/.

    arch-check.py confine CRATE ALLOWED_DIR ROOT...
        Fails when a file under a ROOT but outside ALLOWED_DIR names the
        external crate CRATE (`use CRATE`, `CRATE::path`, `extern crate`).

Exit status: 0 when clean, 1 when a check fails (each finding is printed,
naming the modules or files), 2 on a usage error.

What counts, for `cycles`:
  * Modules are files and directory modules (`foo.rs`, `foo/mod.rs`,
    `foo/bar.rs` is `foo::bar`) and inline `mod name { ... }` blocks. The
    crate roots (lib.rs, main.rs) are the module `crate`; src/bin/ is other
    crates and is skipped.
  * References are `use` declarations (grouped ones such as
    `use crate::{a, b::c}` included), and `crate::`, `super::` and `self::`
    paths in code. A reference to `crate::a::b::X` depends on the longest
    prefix that is a module: `a::b` if it exists, else `a`. A name the crate
    root re-exports (`pub use a::X` in lib.rs) stands for where it comes
    from. `mod` declarations are not references.
  * Comments, string literals and `#[cfg(test)] mod ...` (inline blocks and
    the files of `#[cfg(test)] mod name;`) are ignored.
  * A module that depends on its own ancestor or descendant does not form a
    cycle with it: that is one module tree. Any other dependency, from X to
    Y, is a dependency between the two siblings under their closest common
    ancestor that contain X and Y (`a::x` using `b` makes `a` depend on
    `b`). A cycle is a circle among the siblings of one parent.
"""

import argparse
import os
import re
import sys
from collections import defaultdict

ROOT = ()  # the crate root's module path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_CHAR = re.compile(r"'(?:\\u\{[0-9a-fA-F]{1,6}\}|\\x[0-9a-fA-F]{2}|\\.|[^\\'\n])'")
_RAW = re.compile(r'b?r(#*)"')
_CFG_TEST = re.compile(
    r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]"
    r"(?:\s*#\s*\[[^\]]*\])*"  # further attributes
    r"\s*(?:pub\s*(?:\([^)]*\))?\s*)?mod\s+(" + IDENT + r")\s*([{;])"
)
_INLINE_MOD = re.compile(r"(?<![\w$])mod\s+(" + IDENT + r")\s*\{")
_USE = re.compile(r"(?<![\w$])use\s+")
_VIS_IN = re.compile(r"pub\s*\(\s*in\s+[^)]*\)")
_PATH = re.compile(r"(?<![\w$:])((?:crate|self|super)(?:\s*::\s*" + IDENT + r")+)")
_TOKEN = re.compile(r"\s*(::|[{},;*]|" + IDENT + r")")


def _blank(text):
    """Spaces for every character of `text` but its newlines."""
    return "".join(c if c == "\n" else " " for c in text)


def strip_code(src):
    """`src` with comments and string and char literals replaced by spaces,
    keeping every offset and line where it was."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(_blank(src[i:j]))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(_blank(src[i:j]))
            i = j
        elif (c in "rb") and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")) and _RAW.match(src, i):
            m = _RAW.match(src, i)
            end = src.find('"' + m.group(1), m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            out.append(_blank(src[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(_blank(src[i:j]))
            i = j
        elif c == "'":
            m = _CHAR.match(src, i)
            if m:
                out.append(_blank(m.group(0)))
                i = m.end()
            else:  # a lifetime
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _close_brace(text, open_at):
    """The offset just past the brace matching the `{` at `open_at`."""
    depth = 0
    for j in range(open_at, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(text)


def drop_test_modules(code):
    """`code` (already stripped) without its `#[cfg(test)] mod name { ... }`
    blocks, and the names of its `#[cfg(test)] mod name;` children."""
    test_children = set()
    while True:
        found = False
        for m in _CFG_TEST.finditer(code):
            if m.group(2) == ";":
                test_children.add(m.group(1))
                continue
            end = _close_brace(code, m.end() - 1)
            code = code[: m.start()] + _blank(code[m.start() : end]) + code[end:]
            found = True
            break
        if not found:
            return code, test_children


def parse_use_tree(text):
    """The paths (lists of segments) a use tree such as `crate::{a, b::c}`
    names. `self` in a group stands for the group's prefix; globs and
    aliases are dropped; a leading `::` (an external crate) is kept as an
    empty first segment."""
    tokens = _TOKEN.findall(text)
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else ";"

    def tree(prefix):
        nonlocal pos
        segs = list(prefix)
        if peek() == "::" and not segs:
            segs.append("")
            pos += 1
        while True:
            t = peek()
            if t == "{":
                pos += 1
                paths = []
                while peek() not in ("}", ";"):
                    if peek() == ",":
                        pos += 1
                    else:
                        paths.extend(tree(segs))
                pos += 1
                return paths
            if t == "*":
                pos += 1
                return [segs]
            if re.fullmatch(IDENT, t) and t != "as":
                segs.append(t)
                pos += 1
                if peek() == "::":
                    pos += 1
                    continue
            break
        if peek() == "as":
            pos += 2
        if len(segs) > 1 and segs[-1] == "self":
            segs = segs[:-1]
        return [segs]

    out = []
    while peek() != ";":
        if peek() in (",", "}"):
            pos += 1
        else:
            before = pos
            out.extend(tree([]))
            if pos == before:
                pos += 1
    return [p for p in out if p and p != [""]]


class Crate:
    """The modules of one crate's src/ and the references between them."""

    def __init__(self, src):
        self.src = src
        self.sources = []  # (module path, file)
        self.modules = set()
        self.code = {}  # file -> stripped code without test modules
        self.inline = {}  # file -> [(start, end, module path)]
        self.reexports = {}  # root-level name -> module path it comes from
        self.edges = defaultdict(list)  # (from, to) -> [(file, line, text)]
        self._load()
        self._resolve_reexports()
        for path, f in self.sources:
            self._scan(path, f)

    @staticmethod
    def module_of(rel):
        parts = rel.replace(os.sep, "/").split("/")
        stem = parts[-1][: -len(".rs")]
        if len(parts) == 1 and stem in ("lib", "main"):
            return ROOT
        if stem == "mod":
            return tuple(parts[:-1])
        return tuple(parts[:-1]) + (stem,)

    def _load(self):
        test_only = set()
        for dirpath, dirnames, filenames in os.walk(self.src):
            dirnames.sort()
            if os.path.relpath(dirpath, self.src) == ".":
                dirnames[:] = [d for d in dirnames if d != "bin"]
            for fname in sorted(filenames):
                if not fname.endswith(".rs"):
                    continue
                f = os.path.join(dirpath, fname)
                path = self.module_of(os.path.relpath(f, self.src))
                with open(f, encoding="utf-8", errors="replace") as fh:
                    code, tests = drop_test_modules(strip_code(fh.read()))
                test_only.update(path + (t,) for t in tests)
                self.sources.append((path, f))
                self.code[f] = code
        # Files of `#[cfg(test)] mod name;` and everything below them.
        self.sources = [(p, f) for p, f in self.sources if not any(p[: len(t)] == t for t in test_only)]
        for path, f in self.sources:
            self.modules.add(path)
            nested = []
            for m in _INLINE_MOD.finditer(self.code[f]):
                start, end = m.start(), _close_brace(self.code[f], m.end() - 1)
                # The innermost inline module around this one, if any.
                around = [(s2, p2) for s2, e2, p2 in nested if s2 < start and end <= e2]
                parent = max(around)[1] if around else path
                nested.append((start, end, parent + (m.group(1),)))
            self.inline[f] = nested
            self.modules.update(p for _, _, p in nested)

    def _module_at(self, path, f, offset):
        """The module the code at `offset` of `f` (module `path`) is in."""
        best, width = path, None
        for start, end, p in self.inline[f]:
            if start <= offset < end and (width is None or end - start < width):
                best, width = p, end - start
        return best

    def _children(self, module):
        return {m[-1] for m in self.modules if len(m) == len(module) + 1 and m[: len(module)] == module}

    def _absolute(self, segs, module):
        """The crate-absolute path `segs` names from inside `module`, or None
        when it is outside the crate (std, an external crate, an item)."""
        if not segs or segs[0] == "":
            return None
        head = segs[0]
        if head == "crate":
            return tuple(segs[1:])
        if head in ("super", "self"):
            cur = list(module)
            i = 0
            while i < len(segs) and segs[i] in ("super", "self"):
                if segs[i] == "super":
                    if not cur:
                        return None
                    cur.pop()
                i += 1
            return tuple(cur) + tuple(segs[i:])
        if head in self._children(module):
            return tuple(module) + tuple(segs)
        return None

    def _target(self, abs_path):
        """The module an absolute path depends on: its longest prefix that is
        a module, or, at the root, where a re-exported name comes from."""
        for k in range(len(abs_path), 0, -1):
            if abs_path[:k] in self.modules:
                return abs_path[:k]
        if abs_path and abs_path[0] in self.reexports:
            return self.reexports[abs_path[0]]
        return ROOT

    @staticmethod
    def _uses(code):
        """(offset, text, paths, public) for each use declaration in `code`."""
        for m in _USE.finditer(code):
            end = code.find(";", m.end())
            if end < 0:
                continue
            public = re.search(r"(?<![\w$])pub\s*(\([^)]*\))?\s*$", code[max(0, m.start() - 40) : m.start()])
            yield m.start(), code[m.start() : end + 1], parse_use_tree(code[m.end() : end + 1]), bool(public)

    def _resolve_reexports(self):
        """Names the crate root re-exports (`pub use a::b::X;` in lib.rs),
        so that `crate::X` depends on `a::b`."""
        for path, f in self.sources:
            if path != ROOT:
                continue
            for _, text, paths, public in self._uses(self.code[f]):
                if not public:
                    continue
                alias = re.search(r"\bas\s+(" + IDENT + r")\s*;$", text)
                for segs in paths:
                    abs_path = self._absolute(segs, ROOT)
                    if not abs_path or len(abs_path) < 2:
                        continue
                    name = alias.group(1) if alias and len(paths) == 1 else abs_path[-1]
                    target = self._target(abs_path[:-1])
                    if target != ROOT:
                        self.reexports.setdefault(name, target)

    def _add(self, src_mod, segs, f, code, offset, text):
        abs_path = self._absolute(segs, src_mod)
        if abs_path is None:
            return
        dst = self._target(abs_path)
        if dst == src_mod:
            return
        line = code.count("\n", 0, offset) + 1
        self.edges[(src_mod, dst)].append((f, line, " ".join(text.split())))

    def _scan(self, path, f):
        code = _VIS_IN.sub(lambda m: _blank(m.group(0)), self.code[f])
        for offset, text, paths, _ in list(self._uses(code)):
            mod = self._module_at(path, f, offset)
            for segs in paths:
                self._add(mod, segs, f, code, offset, text)
            code = code[:offset] + _blank(text) + code[offset + len(text) :]
        for m in _PATH.finditer(code):
            segs = [s.strip() for s in m.group(1).split("::")]
            self._add(self._module_at(path, f, m.start()), segs, f, code, m.start(), m.group(1))

    def cycles(self):
        """[(parent, [members], {(a, b): evidence})] for each circle among the
        siblings of one parent."""
        lifted = defaultdict(lambda: defaultdict(list))
        for (x, y), ev in self.edges.items():
            k = 0
            while k < min(len(x), len(y)) and x[k] == y[k]:
                k += 1
            if k == len(x) or k == len(y):
                continue  # ancestor and descendant: one module tree
            lifted[x[:k]][(x[: k + 1], y[: k + 1])].extend((x, y, e) for e in ev)
        found = []
        for parent in sorted(lifted):
            edges = lifted[parent]
            graph = defaultdict(set)
            for a, b in edges:
                graph[a].add(b)
            for scc in strongly_connected(graph):
                if len(scc) > 1:
                    members = sorted(scc)
                    inner = {(a, b): edges[(a, b)] for (a, b) in edges if a in scc and b in scc}
                    found.append((parent, members, inner, shortest_cycle(graph, scc)))
        return found


def strongly_connected(graph):
    """Tarjan's strongly connected components of {node: {successors}}."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    nodes = sorted(set(graph) | {b for bs in graph.values() for b in bs})

    def visit(v):
        work = [(v, iter(sorted(graph.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.add(w)
                    if w == node:
                        break
                out.append(comp)

    for v in nodes:
        if v not in index:
            visit(v)
    return out


def shortest_cycle(graph, scc):
    """A shortest circle through the smallest member of `scc`."""
    start = min(scc)
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, ())):
                if w not in scc:
                    continue
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start]


def name(module):
    return "::".join(module) if module else "crate"


def check_cycles(srcs, out=sys.stdout):
    bad = 0
    for src in srcs:
        if not os.path.isdir(src):
            print(f"arch-check: {src} is not a directory", file=sys.stderr)
            return 2
        for parent, members, edges, circle in Crate(src).cycles():
            bad += 1
            print(
                f"{src}: modules import each other in a cycle (under {name(parent)}): "
                + ", ".join(name(m) for m in members),
                file=out,
            )
            print("  circle: " + " -> ".join(name(m) for m in circle), file=out)
            for (a, b), ev in sorted(edges.items()):
                x, y, (f, line, text) = ev[0]
                via = "" if (x, y) == (a, b) else f" ({name(x)} -> {name(y)})"
                more = f" (and {len(ev) - 1} more)" if len(ev) > 1 else ""
                print(f"  {name(a)} -> {name(b)}{via}: {f}:{line}: {text}{more}", file=out)
    if bad:
        print(f"arch-check: {bad} import cycle(s) between modules", file=out)
        return 1
    return 0


_CONFINE = "(?<![\\w$:])(?:::\\s*)?{0}\\s*::|(?<![\\w$])use\\s+(?:::\\s*)?{0}\\b|(?<![\\w$])extern\\s+crate\\s+{0}\\b"


def check_confine(crate, allowed, roots, out=sys.stdout):
    if not re.fullmatch(IDENT, crate):
        print(f"arch-check: {crate!r} is not a crate name", file=sys.stderr)
        return 2
    pattern = re.compile(_CONFINE.format(re.escape(crate.replace("-", "_"))))
    allowed_abs = os.path.abspath(allowed)
    bad = []
    for root in roots:
        if not os.path.isdir(root):
            print(f"arch-check: {root} is not a directory", file=sys.stderr)
            return 2
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            if os.path.commonpath([os.path.abspath(dirpath), allowed_abs]) == allowed_abs:
                dirnames[:] = []
                continue
            for fname in sorted(filenames):
                if not fname.endswith(".rs"):
                    continue
                f = os.path.join(dirpath, fname)
                with open(f, encoding="utf-8", errors="replace") as fh:
                    code = strip_code(fh.read())
                lines = code.split("\n")
                hits = [i + 1 for i, l in enumerate(lines) if pattern.search(l)]
                if hits:
                    bad.append((f, hits))
    for f, hits in bad:
        shown = ", ".join(str(h) for h in hits[:10]) + (" ..." if len(hits) > 10 else "")
        print(f"{f}: uses the {crate} crate outside {allowed} (line {shown})", file=out)
    if bad:
        print(f"arch-check: {len(bad)} file(s) use {crate} outside {allowed}", file=out)
        return 1
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="arch-check.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="check", required=True)
    c = sub.add_parser("cycles", help="no import cycles between the modules of a crate")
    c.add_argument("srcs", nargs="+", metavar="SRC_DIR")
    k = sub.add_parser("confine", help="an external crate is named only under one directory")
    k.add_argument("crate", metavar="CRATE")
    k.add_argument("allowed", metavar="ALLOWED_DIR")
    k.add_argument("roots", nargs="+", metavar="ROOT")
    a = p.parse_args(argv)
    if a.check == "cycles":
        return check_cycles(a.srcs)
    return check_confine(a.crate, a.allowed, a.roots)


if __name__ == "__main__":
    sys.exit(main())
