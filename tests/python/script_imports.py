"""Checks, without running them, that the scripts in a folder import from each other only what
exists: every `from SIBLING import a, b` names something SIBLING defines or imports at its top
level. The scripts' own third-party imports (torch, safetensors) need not be installed.

    python3 script_imports.py FOLDER     (exit 0, or 1 with one line per broken import)
"""
import ast, os, sys


def top_level_names(tree):
    """Names a module binds at its top level (defs, classes, assignments, imports)."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
    return names


def main(folder):
    trees = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".py"):
            path = os.path.join(folder, f)
            with open(path) as fh:
                try:
                    trees[f[:-3]] = (path, ast.parse(fh.read(), path))
                except SyntaxError as e:
                    print(f"{path}:{e.lineno}: syntax error: {e.msg}")
                    return 1
    defined = {m: top_level_names(t) for m, (_, t) in trees.items()}
    broken = checked = 0
    for m, (path, tree) in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in trees:
                for a in node.names:
                    checked += 1
                    if a.name != "*" and a.name not in defined[node.module]:
                        print(f"{path}:{node.lineno}: imports {a.name} from {node.module}, which does not define it")
                        broken += 1
    print(f"{len(trees)} scripts, {checked} names imported from each other, {broken} broken", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
