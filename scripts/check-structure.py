#!/usr/bin/env python3
"""Check linegate's code-structure rules and print a report.

1. production Rust files (the crates' src/, without unit-test files) are at most 400 lines;
2. production functions (outside #[cfg(test)] items) are at most 80 lines, `fn` line to closing brace;
3. no import cycles among a crate's top-level modules, nor among the modules of any folder under src/;
4. linegate-bridge does not depend on linegate-edge, directly or through another workspace crate.

The e2e test crate (tests/) is not checked; its long files are listed for information.
Exit status 1 when a rule fails, 0 otherwise. `--quiet` prints only the violations.
Python 3.11+ standard library only.
"""
import argparse
import re
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_FILE_LINES, MAX_FN_LINES = 400, 80
TEST_CRATE, BRIDGE, FORBIDDEN = "tests", "linegate-bridge", "linegate-edge"

RAW_STRING = re.compile(r'[bc]?r(#*)"')
CFG_TEST = re.compile(r"#\[\s*cfg\s*\(\s*test\s*\)\s*\]")
TEST_MOD_DECL = re.compile(r"\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;")
FN = re.compile(r"\bfn\s+(\w+)")
USE = re.compile(r"\buse\s+([^;]+);")
VISIBILITY_IN = re.compile(r"\bpub\s*\(\s*in\s+[^)]*\)")
INLINE_PATH = re.compile(r"(?<![\w:$])([a-z_]\w*)((?:\s*::\s*\w+)+)")


def blank(chars, start, end):
    """Replace chars[start:end] by spaces, keeping newlines so line numbers stay."""
    for k in range(start, min(end, len(chars))):
        if chars[k] != "\n":
            chars[k] = " "


def skip_comment(src, i):
    """Index just past the comment (// or nested /* */) starting at i."""
    if src.startswith("//", i):
        end = src.find("\n", i)
        return len(src) if end < 0 else end
    depth, j = 1, i + 2
    while j < len(src) and depth:
        step = src[j:j + 2]
        depth += (step == "/*") - (step == "*/")
        j += 2 if step in ("/*", "*/") else 1
    return j


def skip_literal(src, i):
    """Index just past the string or char literal at i, i itself for a lifetime or label, or None for no literal."""
    raw = RAW_STRING.match(src, i)
    if raw and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
        end = src.find('"' + raw.group(1), raw.end())
        return len(src) if end < 0 else end + 1 + len(raw.group(1))
    if src[i] == '"':
        j = i + 1
        while j < len(src) and src[j] != '"':
            j += 2 if src[j] == "\\" else 1
        return j + 1
    if src[i] == "'":
        if src.startswith("\\", i + 1):
            end = src.find("'", i + 3)
            return len(src) if end < 0 else end + 1
        return i + 3 if src[i + 2:i + 3] == "'" else i  # 'x' is a char; 'a without a quote after is a lifetime
    return None


def mask(src):
    """The source with comments, strings and char literals blanked: same length, same lines."""
    chars, i = list(src), 0
    while i < len(src):
        if src.startswith(("//", "/*"), i):
            end = skip_comment(src, i)
        else:
            end = skip_literal(src, i)
            if end is None or end == i:
                i += 1
                continue
        blank(chars, i, end)
        i = end
    return "".join(chars)


def match_brace(code, open_at):
    """Index of the `}` closing the `{` at open_at."""
    depth = 0
    for k in range(open_at, len(code)):
        depth += (code[k] == "{") - (code[k] == "}")
        if depth == 0:
            return k
    return len(code) - 1


def item_body(code, start):
    """(index of the `{` opening the item or fn starting at start, or None), index just past the item."""
    depth = 0
    for k in range(start, len(code)):
        ch = code[k]
        depth += (ch in "([") - (ch in ")]")
        if depth == 0 and ch == ";":
            return None, k + 1
        if depth == 0 and ch == "{":
            return k, match_brace(code, k) + 1
    return None, len(code)


def strip_tests(code):
    """Masked code with every #[cfg(test)] item blanked, and the names of out-of-line test modules it declares."""
    chars, test_mods = list(code), []
    for m in CFG_TEST.finditer(code):
        decl = TEST_MOD_DECL.match(code, m.end())
        if decl:
            test_mods.append(decl.group(1))
        blank(chars, m.start(), item_body(code, m.end())[1])
    return "".join(chars), test_mods


def line_of(code, pos):
    return code.count("\n", 0, pos) + 1


def functions(code):
    """(name, line, length in lines) of every fn with a body in masked code."""
    for m in FN.finditer(code):
        open_at, end = item_body(code, m.end())
        if open_at is not None:
            first = line_of(code, m.start())
            yield m.group(1), first, line_of(code, end - 1) - first + 1


def module_of(rel):
    """(graph, module path) of a file relative to src/: src/bin/NAME... is its own crate (graph)."""
    parts = list(rel.parts)
    graph = "lib"
    if parts[0] == "bin" and len(parts) > 1:
        graph, parts = "bin/" + Path(parts[1]).stem, parts[2:] if len(parts) > 2 else ["main.rs"]
    last = parts.pop()
    if last not in ("mod.rs", "lib.rs", "main.rs"):
        parts.append(last[:-3])
    return graph, tuple(parts)


def is_test_file(rel):
    return rel.name == "tests.rs" or rel.name.endswith("_tests.rs") or "tests" in rel.parts[:-1]


def use_paths(tree):
    """`a::{b, c::{self, d as e}}` -> [[a, b], [a, c], [a, c, d]]."""
    tokens = re.findall(r"\w+|::|[{},*]", re.sub(r"\bas\s+\w+", "", tree))
    out = []

    def parse(i, prefix):
        path = list(prefix)
        while i < len(tokens) and tokens[i] not in (",", "}"):
            if tokens[i] == "{":
                i += 1
                while i < len(tokens) and tokens[i] != "}":
                    i = parse(i, path)
                    i += i < len(tokens) and tokens[i] == ","
                return i + 1
            if tokens[i] != "::":
                path.append(tokens[i])
            i += 1
        while len(path) > 1 and path[-1] in ("self", "*"):
            path.pop()
        out.append(path)
        return i

    parse(0, [])
    return [p for p in out if p]


def absolute(path, here, modules):
    """Absolute segments of a path written in module `here`, or None when it leaves the crate."""
    if path[0] == "crate":
        return list(path[1:])
    if path[0] == "self":
        return list(here) + path[1:]
    if path[0] == "super":
        base = list(here)
        while path and path[0] == "super":
            base, path = base[:-1], path[1:]
        return base + path
    return list(here) + path if here + (path[0],) in modules else None


def references(code, here, modules):
    """(absolute segments, line) of every crate-internal path: `use` trees and inline paths such as crate::a::b(."""
    code = VISIBILITY_IN.sub(lambda m: " " * len(m.group()), code)
    chars = list(code)
    for m in USE.finditer(code):
        for path in use_paths(m.group(1)):
            target = absolute(path, here, modules)
            if target is not None:
                yield target, line_of(code, m.start())
        blank(chars, m.start(), m.end())
    code = "".join(chars)
    for m in INLINE_PATH.finditer(code):
        path = [m.group(1)] + re.findall(r"\w+", m.group(2))
        target = absolute(path, here, modules)
        if target is not None:
            yield target, line_of(code, m.start())


def target_module(segments, modules, imports):
    """The module a reference lands in: its longest module prefix, following names a module imports."""
    for _ in range(8):
        k = max(k for k in range(len(segments) + 1) if tuple(segments[:k]) in modules or k == 0)
        name = (tuple(segments[:k]), segments[k]) if k < len(segments) else None
        if name not in imports:
            return tuple(segments[:k])
        segments = imports[name] + segments[k + 1:]
    return tuple(segments[:k])


def module_edges(sources):
    """{(graph, folder): {(from, to): "file:line"}} for every folder level of every graph, given
    sources = {path: (graph, module, code without tests)}."""
    modules = {(g, m[:k]) for g, m, _ in sources.values() for k in range(len(m) + 1)}
    refs, imports = [], {}
    for path, (graph, here, code) in sources.items():
        mods = {m for g, m in modules if g == graph}
        for target, line in references(code, here, mods):
            refs.append((graph, here, target, f"{path}:{line}"))
            imports.setdefault((graph, here, target[-1]), target)
    edges = defaultdict(dict)
    for graph, here, target, where in refs:
        mods = {m for g, m in modules if g == graph}
        local = {(m, n): t for (g, m, n), t in imports.items() if g == graph and t[:len(m) + 1] != list(m) + [n]}
        dest = target_module(target, mods, local)
        for d in range(len(here)):
            if dest[:d] == here[:d] and len(dest) > d and dest[d] != here[d]:
                edges[(graph, here[:d])].setdefault((here[d], dest[d]), where)
    return edges


def cycles(edges):
    """Strongly-connected components of more than one node (Tarjan)."""
    graph = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(list(graph)):
        if v not in index:
            visit(v)
    return found


def dependencies(crate_dir, with_dev):
    """Package names a crate's Cargo.toml depends on."""
    data = tomllib.loads((crate_dir / "Cargo.toml").read_text())
    keys = ["dependencies", "build-dependencies"] + (["dev-dependencies"] if with_dev else [])
    tables = [data.get(k, {}) for k in keys]
    tables += [t.get(k, {}) for t in data.get("target", {}).values() for k in keys]
    return {spec.get("package", name) if isinstance(spec, dict) else name for t in tables for name, spec in t.items()}


def dependency_chain(members, start, forbidden):
    """The chain of packages from start to forbidden through workspace crates, or None."""
    dirs = {tomllib.loads((ROOT / m / "Cargo.toml").read_text())["package"]["name"]: ROOT / m for m in members}
    todo, seen = [[start]], {start}
    while todo:
        chain = todo.pop(0)
        for dep in sorted(dependencies(dirs[chain[-1]], with_dev=len(chain) == 1)):
            if dep == forbidden:
                return chain + [dep]
            if dep in dirs and dep not in seen:
                seen.add(dep)
                todo.append(chain + [dep])
    return None


def check_crate(crate):
    """Violations and a summary line for one production crate."""
    files = sorted((ROOT / crate / "src").rglob("*.rs"))
    stripped = {f: strip_tests(mask(f.read_text())) for f in files}
    test_dirs = set()
    for f, (_, test_mods) in stripped.items():
        home = f.parent if f.name in ("mod.rs", "lib.rs", "main.rs") else f.with_suffix("")
        test_dirs |= {home / (name + ".rs") for name in test_mods} | {home / name for name in test_mods}
    src = ROOT / crate / "src"
    prod = [f for f in files if not is_test_file(f.relative_to(src)) and not test_dirs & {f, *f.parents}]
    violations, longest = [], ("-", 0, "")
    for f in prod:
        rel, lines = f.relative_to(ROOT), f.read_text().count("\n")
        if lines > MAX_FILE_LINES:
            violations.append(f"[file > {MAX_FILE_LINES}] {rel}: {lines} lines")
        for name, line, length in functions(stripped[f][0]):
            if length > MAX_FN_LINES:
                violations.append(f"[fn > {MAX_FN_LINES}] {rel}:{line} {name}: {length} lines")
            if length > longest[1]:
                longest = (name, length, f"{rel}:{line}")
    sources = {f.relative_to(ROOT): (*module_of(f.relative_to(src)), stripped[f][0]) for f in prod}
    found = 0
    for (graph, folder), edges in sorted(module_edges(sources).items()):
        level = "top level" if not folder else "src/" + "/".join(folder)
        level += "" if graph == "lib" else f" of {graph}"
        for component in cycles(edges):
            found += 1
            violations.append(f"[cycle] {crate} {level}: {{{', '.join(component)}}}")
            violations += [f"    {a} -> {b}  ({where})" for (a, b), where in sorted(edges.items())
                           if a in component and b in component]
    summary = (f"{crate}: {len(prod)} production files ({len(files) - len(prod)} unit-test files), "
               f"longest fn {longest[0]} {longest[1]} lines ({longest[2]}), {found} cycles")
    return violations, summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="print only violations")
    quiet = parser.parse_args().quiet
    members = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["members"]
    violations, summaries = [], []
    for crate in (m for m in members if m != TEST_CRATE):
        crate_violations, summary = check_crate(crate)
        violations += crate_violations
        summaries.append(summary)
    chain = dependency_chain(members, BRIDGE, FORBIDDEN)
    if chain:
        violations.append(f"[deps] {BRIDGE} depends on {FORBIDDEN}: {' -> '.join(chain)}")
    if not quiet:
        print(f"linegate structure check (files <= {MAX_FILE_LINES} lines, functions <= {MAX_FN_LINES} lines)")
        print("\n".join("  " + s for s in summaries))
        print(f"  {BRIDGE} -> {FORBIDDEN}: {'DEPENDS' if chain else 'no dependency'}")
        long_tests = [(f.relative_to(ROOT), f.read_text().count("\n")) for f in sorted((ROOT / TEST_CRATE).rglob("*.rs"))
                      if "target" not in f.parts]
        long_tests = [(f, n) for f, n in long_tests if n > MAX_FILE_LINES]
        print(f"info, {TEST_CRATE} crate (not checked): {len(long_tests)} files over {MAX_FILE_LINES} lines")
        print("\n".join(f"  {f}: {n} lines" for f, n in long_tests))
        print(f"violations: {len(violations)}" if violations else "no violations")
    print("\n".join(violations), end="\n" if violations else "")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
