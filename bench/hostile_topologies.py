"""Hostile topology texts, one generator per class of issue 10 ("Parsing is not bounded"),
sized from model.limits so that each sits just under or just over a bound (pure: each
function returns YAML text). Used by bench/parse.py and by the tests of the loader."""
from __future__ import annotations

from model import limits

MiB = 1024 * 1024
HEAD = "name: t\nasn: 64512\naddress-space: [10.0.0.0/8]\n"


def output_bound(path_chars: int) -> int:
    """The most `vispd validate` may print for a file whose path has `path_chars`
    characters: MAX_SHOWN_PROBLEMS problems of a location, a message, an excerpt and a caret
    line (wide characters pad the caret by two cells), and two closing lines."""
    per_problem = path_chars + 16 + limits.MAX_MESSAGE_CHARS + 2 * (6 + 2 * (limits.EXCERPT_CHARS + 2))
    return limits.MAX_SHOWN_PROBLEMS * per_problem + 200


def plain_nodes(target_bytes: int) -> str:
    """Ordinary annotated nodes until the text reaches `target_bytes`."""
    out, size, i = [HEAD, "nodes:\n"], len(HEAD), 0
    while size < target_bytes:
        line = f"  - {{name: node-{i}, site: s{i % 999999}, latitude: 40.5, longitude: -100.25}}\n"
        out.append(line)
        size += len(line)
        i += 1
    return "".join(out)


def merge_bomb(levels: int = 12, width: int = 8) -> str:
    """Each mapping merges the previous one `width` times: under 1 kB, exponential."""
    text = "x0: &x0 {a: 1, b: 2, c: 3, d: 4}\n"
    for i in range(1, levels):
        text += f"x{i}: &x{i} {{<<: [" + ", ".join([f"*x{i - 1}"] * width) + f"], k{i}: 1}}\n"
    return text


def merge_and_alias_bomb(levels: int = 30) -> str:
    """Each mapping merges the previous one and holds it twice as values."""
    text = "x0: &x0 {a: 1}\n"
    for i in range(1, levels):
        text += f"x{i}: &x{i} {{<<: *x{i - 1}, p: *x{i - 1}, q: *x{i - 1}}}\n"
    return text


def laughs(levels: int = 9, width: int = 10) -> str:
    text = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for i in range(1, levels):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]\n"
    return text


def string_bomb(levels: int = 5) -> str:
    """Few values, but a 1,000-character string repeated 10^levels times."""
    text = HEAD + "s: &l0 " + "x" * 1000 + "\n"
    for i in range(1, levels):
        text += f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n"
    return text


def aliased_big_values(size: int = MiB, copies: int = 3000) -> str:
    return HEAD + f"description: &big {'v' * size}\nnodes:\n" + "  - {name: *big}\n" * copies


def long_line_of_unknown_keys(target_bytes: int = 2 * MiB) -> str:
    keys, size, i = [], 0, 0
    while size < target_bytes:
        key = f"unknown-key-{i}: 1"
        keys.append(key)
        size += len(key) + 2
        i += 1
    return HEAD + "nodes:\n  - {name: a, " + ", ".join(keys) + "}\n"


def unknown_keys_at_the_value_limit() -> str:
    """As many unknown keys as the value limit lets through: the most problems the schema
    stage can be asked to describe."""
    per_node = 57
    nodes = (limits.MAX_VALUES - 1000) // (3 + 2 * per_node)
    lines = [f"  - {{name: n{i}, " + ", ".join(f"bad{j}: 1" for j in range(per_node)) + "}\n"
             for i in range(nodes)]
    return HEAD + "nodes:\n" + "".join(lines)


def many_bad_names(target_bytes: int) -> str:
    out, size, i = [HEAD, "nodes:\n"], 0, 0
    while size < target_bytes:
        line = f"  - {{name: 'N{i}', site: '!!'}}\n"
        out.append(line)
        size += len(line)
        i += 1
    return "".join(out)


def flow_of_ones(target_bytes: int) -> str:
    return "nodes: [" + "1," * ((target_bytes - 20) // 2) + "1]\n"


def deep_flow(levels: int = 100_000) -> str:
    return "nodes: " + "[" * levels + "]" * levels + "\n"


def deep_flow_mapping(levels: int = 100_000) -> str:
    return "{a: " * levels + "1" + "}" * levels + "\n"


def deep_block(levels: int = 1500) -> str:
    return "".join("  " * i + "a:\n" for i in range(levels))


def deep_dashes(levels: int = 5000) -> str:
    return "- " * levels + "x\n"


def deep_through_aliases(levels: int = 40) -> str:
    """Each anchor is nested two levels deeper than the alias it holds: well under the
    depth limit as written, far over it once expanded."""
    text = "a0: &a0 [x]\n"
    for i in range(1, levels):
        text += f"a{i}: &a{i} [[*a{i - 1}]]\n"
    return text


def syntax_error_after(padding: str) -> str:
    return padding + "links: [oops\nx: y\n"


def ring(nodes: int, slices: int = 2, slice_nodes: list[list[int]] | None = None) -> str:
    out = [HEAD, "nodes:\n"] + [f"  - {{name: n{i}}}\n" for i in range(nodes)]
    out += ["links:\n"] + [f"  - {{between: [n{i}, n{(i + 1) % nodes}], bandwidth: 10G}}\n"
                           for i in range(nodes)]
    out.append("slices:\n")
    for j in range(slices):
        spans = "all" if slice_nodes is None else "[" + ", ".join(f"n{i}" for i in slice_nodes[j]) + "]"
        out.append(f"  - {{name: s{j}, bandwidth: 1M, prefix-length: 16, nodes: {spans}, links: all}}\n")
    return "".join(out)


def at_the_count_limits() -> str:
    """The largest topology the limits accept: every node annotated, four links per node,
    two slices whose route pairs add up to the limit."""
    n = limits.MAX_NODES
    lines = [HEAD, "nodes:\n"]
    lines += [f"  - {{name: node-{i}, site: s{i}, latitude: 40.5, longitude: -100.25}}\n" for i in range(n)]
    lines.append("links:\n")
    for step in (1, 2, 3, 5):
        lines += [f"  - {{between: [node-{i}, node-{(i + step) % n}], bandwidth: 100G, cost: 10}}\n"
                  for i in range(n)]
    half = int((limits.MAX_ROUTE_PAIRS // 2) ** 0.5)
    lines.append("slices:\n")
    for j, first in enumerate((0, n - half)):
        spans = ", ".join(f"node-{i}" for i in range(first, first + half))
        lines.append(f"  - {{name: s{j}, bandwidth: 1M, prefix-length: 12, nodes: [{spans}]}}\n")
    return "".join(lines)


def dangling_link_ends(nodes: int = limits.MAX_NODES, links: int = limits.MAX_LINKS) -> str:
    """Every link names two nodes that do not exist: a 'did you mean' for each end."""
    out = [HEAD, "nodes:\n"] + [f"  - {{name: node-{i}}}\n" for i in range(nodes)]
    out += ["links:\n"] + [f"  - {{between: [zz-{i}, yy-{i}], bandwidth: 1G}}\n" for i in range(links)]
    return "".join(out)
