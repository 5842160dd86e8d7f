#!/usr/bin/env python3
"""List each module's imports of other modules of the same crate and report cycles.

Usage: scripts/modcycles.py CRATE_ROOT_FILE   (e.g. tools/src/main.rs, capture/src/lib.rs)
Prints one line per module with the modules it uses, then any cycle (exit 1).
A plain-text stand-in for `cargo modules dependencies` that needs no install.
With --facades-ok, `pub use` re-exports are not counted as uses.
A module's uses: every `crate::a::b`, `super::x`, `self::x` path and every bare
`child::` path to one of its own declared submodules, resolved to the deepest module
that exists. Comments and string literals are stripped first. Ownership (`mod x;`)
is not a use. Edges to a module's own ancestors via `super::Item` count as uses.
Inline `mod name { ... }` blocks (unit tests) are left out; file modules, test ones
included, are not.
"""
import os, re, sys

def strip(src):
    # One left-to-right scan, so a `//` inside a string or an `r"` at a string's end
    # is not taken for a comment or a raw string.
    tok = re.compile(r'//[^\n]*|/\*.*?\*/|(?<![\w"])r(#*)".*?"\1|"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])\'', re.S)
    return tok.sub(lambda m: '""' if m.group(0)[0] in 'r"' else ("''" if m.group(0)[0] == "'" else ''), src)

def drop_inline_mods(src):
    # An inline `mod name { ... }` (in practice `mod tests`) has its own `super`; its
    # uses are the test's, not the file's, so the block is left out.
    out, i = [], 0
    for m in re.finditer(r'\bmod\s+\w+\s*\{', src):
        if m.start() < i:
            continue
        depth, j = 0, m.end() - 1
        while j < len(src):
            depth += {'{': 1, '}': -1}.get(src[j], 0)
            j += 1
            if depth == 0:
                break
        out.append(src[i:m.start()])
        i = j
    out.append(src[i:])
    return ''.join(out)

mods = {}  # path tuple -> (file, stripped source)
def load(modpath, file):
    src = drop_inline_mods(strip(open(file).read()))
    mods[modpath] = (file, src)
    d = os.path.dirname(file)
    base = os.path.basename(file)
    subdir = d if base in ('mod.rs', 'lib.rs', 'main.rs') else os.path.join(d, base[:-3])
    for m in re.finditer(r'^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;', src, re.M):
        name = m.group(1)
        for cand in (os.path.join(subdir, name + '.rs'), os.path.join(subdir, name, 'mod.rs')):
            if os.path.exists(cand):
                load(modpath + (name,), cand)
                break
    # inline modules (e.g. `mod tests { ... }`) stay part of the file's module

args = [a for a in sys.argv[1:] if not a.startswith('--')]
facades_ok = '--facades-ok' in sys.argv
root = args[0]
load((), root)
if facades_ok:
    # A parent re-exporting its children's items (`pub use child::Item;`) is a facade,
    # not a dependency of the parent's own code on the child.
    mods = {k: (f, re.sub(r'\bpub(?:\([^)]*\))?\s+use\s+[^;]*;', '', src)) for k, (f, src) in mods.items()}

def resolve(cur, segs):
    # longest prefix of segs that names a module
    best = None
    for i in range(1, len(segs) + 1):
        if tuple(segs[:i]) in mods:
            best = tuple(segs[:i])
    return best

def expand_use_groups(src):
    # `use a::{b, c::d}` -> a::b, a::c::d (one level of nesting is enough here)
    out = []
    for m in re.finditer(r'\buse\s+([\w:]+)::\{([^;]*?)\}\s*;', src, re.S):
        pre = m.group(1)
        for part in re.split(r',', m.group(2)):
            part = part.strip().split(' as ')[0].strip()
            if part:
                out.append(pre + '::' + part.replace('{', '').replace('}', ''))
    return out

edges = {}
for mp, (file, src) in mods.items():
    deps = set()
    paths = re.findall(r'\b((?:crate|super|self)(?:::\w+)+)', src) + expand_use_groups(src)
    children = {k[-1] for k in mods if len(k) == len(mp) + 1 and k[:len(mp)] == mp}
    for c in children:
        if re.search(r'(?<![:\w])' + c + r'::', src):
            deps.add(mp + (c,))
    for p in paths:
        segs = p.split('::')
        base = list(mp)
        if segs[0] == 'crate':
            base, segs = [], segs[1:]
        else:
            while segs and segs[0] in ('super', 'self'):
                if segs[0] == 'super':
                    base = base[:-1]
                segs = segs[1:]
        target = resolve(base, base + segs) or tuple(base)
        if target != mp:
            deps.add(target)
    edges[mp] = deps

name = lambda t: '::'.join(t) or 'crate'
for mp in sorted(edges):
    print(f"{name(mp):20} -> {', '.join(sorted(name(d) for d in edges[mp])) or '-'}")

# Tarjan SCC
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
def strong(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in index:
            strong(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1:
            sccs.append(comp)
for v in edges:
    if v not in index:
        strong(v)
if sccs:
    for c in sccs:
        print("CYCLE:", ' <-> '.join(sorted(name(x) for x in c)))
    sys.exit(1)
print(f"{len(edges)} modules, no cycle")
