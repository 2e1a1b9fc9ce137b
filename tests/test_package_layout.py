"""The package's shape: no method module imports another, no import cycle, no function
body longer than about 80 lines."""

import ast
from pathlib import Path

import skssl

PACKAGE = Path(skssl.__file__).parent


def _imports(path):
    """Absolute names of the skssl modules (and module members) that ``path`` imports."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    if path.name == "__init__.py":
        module = package
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            names |= {target} | {f"{target}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("skssl"):
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return module, names


def _graph():
    modules = {_imports(path)[0]: _imports(path)[1] for path in PACKAGE.rglob("*.py")}
    return {module: {name for name in names if name in modules and name != module} for module, names in modules.items()}


def test_no_method_module_imports_another():
    methods = {path.stem for path in (PACKAGE / "methods").glob("*.py") if not path.stem.startswith("_")}
    for module, imported in _graph().items():
        if module.startswith("skssl.methods.") and not module.rsplit(".", 1)[1].startswith("_"):
            siblings = {name.rsplit(".", 1)[1] for name in imported if name.startswith("skssl.methods.")} & methods
            assert not siblings, f"{module} imports the method module(s) {siblings}"


def test_no_import_cycle():
    """Apart from the packages' ``__init__`` re-exporting their modules."""
    graph = {module: deps - {"skssl", "skssl.methods"} for module, deps in _graph().items()}
    state = {}

    def visit(module, path):
        state[module] = "open"
        for dependency in graph[module]:
            assert state.get(dependency) != "open", " -> ".join([*path, dependency])
            if dependency not in state:
                visit(dependency, [*path, dependency])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_no_function_body_is_longer_than_about_80_lines():
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                has_docstring = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                first = body[1] if has_docstring and len(body) > 1 else body[0]
                length = node.end_lineno - first.lineno + 1
                assert length <= 85, f"{path.name}:{node.lineno} {node.name} has {length} lines"
