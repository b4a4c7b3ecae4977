#!/usr/bin/env python3
"""Check linegate's code-structure rules; exit 1 when one fails. Python 3.11+ standard library only.

1. production files (the crates' src/, unit-test files excluded) have at most 400 lines;
2. production functions (outside #[cfg(test)] items) have at most 80 lines, `fn` line to closing brace;
3. no import cycle among a crate's top-level modules, nor among the modules of any folder under src/;
4. linegate-bridge does not depend on linegate-edge, directly or through another workspace crate.
The e2e crate tests/ is not checked: its long files are listed for information. --quiet: violations only.
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

# Comments, strings (normal, byte, raw r#".."#) and char literals; 'a without a closing quote is a lifetime.
LITERAL = re.compile(r"""//[^\n]*|/\*|(?<!\w)[bc]?r(#*)".*?"\1|"(?:\\.|[^"\\])*"|'(?:\\.[^'\n]*|[^\\'\n])'""", re.S)
CFG_TEST = re.compile(r"#\[\s*cfg\s*\(\s*test\s*\)\s*\]")
ITEM = re.compile(r"\s*(?:#\[[^\]]*\]\s*)*(?:pub|fn|mod|impl|use|struct|enum|const|static|type|trait|unsafe|async"
                  r"|extern|macro_rules)\b")
MOD_DECL = re.compile(r"\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;")
FN = re.compile(r"\bfn\s+(\w+)")
USE = re.compile(r"\buse\s+([^;]+);")
VISIBILITY_IN = re.compile(r"\bpub\s*\(\s*in\s+[^)]*\)")
INLINE_PATH = re.compile(r"(?<![\w:$])([a-z_]\w*)((?:\s*::\s*\w+)+)")


def blank(chars, start, end):
    """Spaces over chars[start:end], newlines kept so that line numbers stay."""
    for k in range(start, min(end, len(chars))):
        chars[k] = chars[k] if chars[k] == "\n" else " "


def mask(src):
    """The source with comments, strings and char literals blanked: same length, same lines."""
    chars, pos = list(src), 0
    while m := LITERAL.search(src, pos):
        end = m.end()
        if m.group() == "/*":  # block comments nest
            depth = 1
            while depth and end < len(src):
                step = src[end:end + 2]
                depth += (step == "/*") - (step == "*/")
                end += 2 if step in ("/*", "*/") else 1
        blank(chars, m.start(), end)
        pos = end
    return "".join(chars)


def item_end(code, start, item=True):
    """(index of the body's `{` or None, index just past) of what starts at start: an item ends at its `;` or
    its body's `}`; a field, arm or statement at its `,` or `;`, or before the enclosing `}`."""
    depth = 0
    for k in range(start, len(code)):
        ch = code[k]
        if item and depth == 0 and ch == "{":
            close, level = k, 0
            while close < len(code) and (level := level + (code[close] == "{") - (code[close] == "}")):
                close += 1
            return k, close + 1
        depth += (ch in "([{") - (ch in ")]}")
        if depth < 0:
            return None, k
        if depth == 0 and (ch == ";" or (ch == "," and not item)):
            return None, k + 1
    return None, len(code)


def strip_tests(code):
    """Masked code with every #[cfg(test)] item blanked, and the out-of-line modules declared as tests."""
    chars, test_mods = list(code), []
    for m in CFG_TEST.finditer(code):
        if decl := MOD_DECL.match(code, m.end()):
            test_mods.append(decl.group(1))
        blank(chars, m.start(), item_end(code, m.end(), ITEM.match(code, m.end()) is not None)[1])
    return "".join(chars), test_mods


def line_of(code, pos):
    return code.count("\n", 0, pos) + 1


def functions(code):
    """(name, line, length in lines) of every fn with a body."""
    for m in FN.finditer(code):
        body, end = item_end(code, m.end())
        if body is not None:
            yield m.group(1), line_of(code, m.start()), line_of(code, end - 1) - line_of(code, m.start()) + 1


def module_of(rel):
    """(graph, module path) of a file relative to src/; each src/bin/NAME is a crate (graph) of its own."""
    parts, graph = list(rel.parts), "lib"
    if parts[0] == "bin" and len(parts) > 1:
        graph, parts = "bin/" + Path(parts[1]).stem, parts[2:] or ["main.rs"]
    last = parts.pop()
    return graph, tuple(parts if last in ("mod.rs", "lib.rs", "main.rs") else parts + [last[:-3]])


def use_paths(tree):
    """`a::{b, c::{self, d as e}, f::*}` -> [[a, b], [a, c], [a, c, d], [a, f, *]]."""
    tokens, out = re.findall(r"\w+|[{},*]", re.sub(r"\bas\s+\w+", "", tree)), []

    def parse(i, path):
        while i < len(tokens) and tokens[i] not in ",}":
            if tokens[i] == "{":
                i += 1
                while i < len(tokens) and tokens[i] != "}":
                    i = parse(i, list(path))
                    i += i < len(tokens) and tokens[i] == ","
                return i + 1
            path, i = path + [tokens[i]], i + 1
        out.append(path[:-1] if len(path) > 1 and path[-1] == "self" else path)
        return i

    parse(0, [])
    return [p for p in out if p]


def absolute(path, here, modules):
    """Segments from the crate root of a path written in module `here`, or None when it leaves the crate."""
    if path[0] == "crate":
        return path[1:]
    if path[0] in ("self", "super"):
        ups = next((k for k, p in enumerate(path) if p != "super"), len(path)) if path[0] == "super" else 0
        return list(here[:len(here) - ups]) + path[max(ups, 1):]  # self:: is ups == 0
    return list(here) + path if here + (path[0],) in modules else None  # a child module, named bare


def references(code, here, modules):
    """(segments from the root, line, name imported or None) of each crate-internal path: `use` trees and
    inline paths such as crate::a::f( or, in a parent module, child::f(."""
    chars = list(VISIBILITY_IN.sub(lambda m: " " * len(m.group()), code))
    for m in USE.finditer(code):
        for path in use_paths(m.group(1)):
            glob = path[-1] == "*"
            if target := absolute(path[:-1] if glob else path, here, modules):
                yield target, line_of(code, m.start()), None if glob else target[-1]
        blank(chars, m.start(), m.end())
    for m in INLINE_PATH.finditer("".join(chars)):
        if target := absolute([m.group(1)] + re.findall(r"\w+", m.group(2)), here, modules):
            yield target, line_of(code, m.start()), None


def target_module(segments, modules, imports):
    """The module a path lands in: its longest module prefix, following the names that modules import."""
    for _ in range(8):
        k = max(k for k in range(len(segments) + 1) if tuple(segments[:k]) in modules)
        name = (tuple(segments[:k]), segments[k]) if k < len(segments) else None
        if name not in imports:
            break
        segments = imports[name] + segments[k + 1:]
    return tuple(segments[:k])


def module_edges(sources):
    """{(graph, folder): {(module, module): "file:line"}} from sources {file: (graph, module, code)}: a reference
    from module a.b.c to a.d.e is the edge b -> d at folder a, and the edge a -> d at the top level."""
    modules, imports, refs, edges = defaultdict(set), defaultdict(dict), [], defaultdict(dict)
    for graph, here, _ in sources.values():
        modules[graph] |= {here[:k] for k in range(len(here) + 1)}
    for file, (graph, here, code) in sources.items():
        for target, line, name in references(code, here, modules[graph]):
            refs.append((graph, here, target, f"{file}:{line}"))
            if name and target != list(here) + [name]:
                imports[graph].setdefault((here, name), target)
    for graph, here, target, where in refs:
        dest = target_module(target, modules[graph], imports[graph])
        for d in range(len(here)):
            if dest[:d] == here[:d] and len(dest) > d and dest[d] != here[d]:
                edges[(graph, here[:d])].setdefault((here[d], dest[d]), where)
    return edges


def cycles(edges):
    """Strongly-connected components of more than one node (Tarjan)."""
    graph, index, low, stack, found = defaultdict(set), {}, {}, [], []
    for a, b in edges:
        graph[a].add(b)

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = stack[stack.index(v):]
            del stack[stack.index(v):]
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def dependencies(crate_dir, with_dev):
    """Package names in a crate's dependency tables."""
    data = tomllib.loads((crate_dir / "Cargo.toml").read_text())
    keys = ["dependencies", "build-dependencies"] + ["dev-dependencies"] * with_dev
    tables = [data.get(k, {}) for k in keys] + [t.get(k, {}) for t in data.get("target", {}).values() for k in keys]
    return {spec.get("package", name) if isinstance(spec, dict) else name for t in tables for name, spec in t.items()}


def dependency_chain(members, start, forbidden):
    """The packages from start to forbidden through workspace crates (breadth first), or None."""
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


def production_files(src, declared_tests):
    """The files under src that are not unit tests (tests.rs, *_tests.rs, tests/, #[cfg(test)] mod x;)."""
    test_paths = set()
    for file, names in declared_tests.items():
        home = file.parent if file.name in ("mod.rs", "lib.rs", "main.rs") else file.with_suffix("")
        test_paths |= {home / f"{n}.rs" for n in names} | {home / n for n in names}
    return [f for f in sorted(declared_tests) if not (f.name == "tests.rs" or f.name.endswith("_tests.rs")
            or "tests" in f.relative_to(src).parts[:-1] or test_paths & {f, *f.parents})]


def check_crate(crate):
    """(violations, summary line) of one production crate."""
    src = ROOT / crate / "src"
    stripped = {f: strip_tests(mask(f.read_text())) for f in src.rglob("*.rs")}
    prod = production_files(src, {f: names for f, (_, names) in stripped.items()})
    violations, longest = [], ("-", 0, "")
    for f in prod:
        rel, lines = f.relative_to(ROOT), len(f.read_text().splitlines())
        if lines > MAX_FILE_LINES:
            violations.append(f"[file > {MAX_FILE_LINES}] {rel}: {lines} lines")
        for name, line, length in functions(stripped[f][0]):
            if length > MAX_FN_LINES:
                violations.append(f"[fn > {MAX_FN_LINES}] {rel}:{line} {name}: {length} lines")
            longest = max(longest, (name, length, f"{rel}:{line}"), key=lambda fn: fn[1])
    sources = {f.relative_to(ROOT): (*module_of(f.relative_to(src)), stripped[f][0]) for f in prod}
    found = 0
    for (graph, folder), edges in sorted(module_edges(sources).items()):
        level = ("top level" if not folder else "src/" + "/".join(folder)) + ("" if graph == "lib" else f" of {graph}")
        for component in cycles(edges):
            found += 1
            violations.append(f"[cycle] {crate} {level}: {{{', '.join(component)}}}")
            violations += [f"    {a} -> {b}  ({where})" for (a, b), where in sorted(edges.items())
                           if a in component and b in component]
    return violations, (f"{crate}: {len(prod)} production files ({len(stripped) - len(prod)} unit-test files), "
                        f"longest fn {longest[0]} {longest[1]} lines ({longest[2]}), cycles: {found}")


def long_test_crate_files():
    """(file, lines) of the e2e test crate's files over the limit."""
    files = sorted((ROOT / TEST_CRATE).rglob("*.rs"))
    counted = ((f.relative_to(ROOT), len(f.read_text().splitlines())) for f in files)
    return [(f, n) for f, n in counted if n > MAX_FILE_LINES and "target" not in f.parts]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="print only the violations")
    quiet = parser.parse_args().quiet
    members = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["members"]
    violations, summaries = [], []
    for crate in (m for m in members if m != TEST_CRATE):
        crate_violations, summary = check_crate(crate)
        violations += crate_violations
        summaries.append(summary)
    if chain := dependency_chain(members, BRIDGE, FORBIDDEN):
        violations.append(f"[deps] {BRIDGE} depends on {FORBIDDEN}: {' -> '.join(chain)}")
    if not quiet:
        print(f"linegate structure check (files <= {MAX_FILE_LINES} lines, functions <= {MAX_FN_LINES} lines)")
        print("\n".join("  " + s for s in summaries))
        print(f"  {BRIDGE} -> {FORBIDDEN}: {'DEPENDS' if chain else 'no dependency'}")
        long_tests = long_test_crate_files()
        print(f"info, {TEST_CRATE} crate (not checked): {len(long_tests)} files over {MAX_FILE_LINES} lines")
        print("".join(f"  {f}: {n} lines\n" for f, n in long_tests), end="")
        failures = sum(not v.startswith(" ") for v in violations)  # a cycle's edges are indented under it
        print(f"violations: {failures}" if violations else "no violations")
    print("".join(v + "\n" for v in violations), end="")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
