"""`/docs`: the OpenAPI document rendered as one HTML page on the server.

No JavaScript and no assets from anywhere else: every operation with its parameters,
body and answers, then every schema, linked by anchors. Text is escaped; nothing here
reads a request.
"""

from __future__ import annotations

import html
import json
from typing import Any

__all__ = ["render_docs"]

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2329;background:#fafbfc}
main{max-width:980px;margin:0 auto;padding:1rem 1.5rem 4rem}
h1{margin:.5rem 0 0}h2{border-bottom:1px solid #d0d7de;padding-top:1.5rem}
nav{columns:3;font-size:14px}nav a{display:block}
.op{background:#fff;border:1px solid #d0d7de;border-radius:6px;margin:.8rem 0;padding:.3rem 1rem}
.op h3{font:600 15px ui-monospace,monospace;margin:.6rem 0 .2rem}
.m{display:inline-block;min-width:4.5em;color:#fff;border-radius:4px;padding:0 .4em;
text-align:center;margin-right:.5em}
.get{background:#1f6feb}.post{background:#2da44e}.patch{background:#bf8700}
.delete{background:#cf222e}.put{background:#8250df}
table{border-collapse:collapse;width:100%;font-size:14px;margin:.3rem 0 .6rem}
td,th{border-top:1px solid #eaeef2;padding:.25rem .4rem;text-align:left;vertical-align:top}
code,.t,pre{font-family:ui-monospace,monospace;font-size:13px}.muted{color:#57606a}
pre{background:#f6f8fa;padding:.5rem;overflow:auto}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _type(schema: dict[str, Any]) -> str:
    """A schema as a short HTML type expression, with links to named schemas."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f'<a href="#schema-{_e(name)}">{_e(name)}</a>'
    if "anyOf" in schema:
        return " | ".join(_type(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(f"<code>{_e(json.dumps(v))}</code>" for v in schema["enum"])
    if "const" in schema:
        return f"<code>{_e(json.dumps(schema['const']))}</code>"
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {_type(schema['additionalProperties'])}"
    return _e(kind)


def _rules(schema: dict[str, Any]) -> str:
    """Bounds and notes of a schema (looking into a nullable union)."""
    notes: list[str] = []
    parts = schema.get("anyOf", [schema])
    for part in parts:
        for key, word in (
            ("minLength", "min length"), ("maxLength", "max length"), ("minimum", "min"),
            ("maximum", "max"), ("minItems", "min items"), ("maxItems", "max items"),
            ("maxProperties", "max entries"), ("pattern", "pattern"), ("default", "default"),
        ):  # fmt: skip
            if key in part and not (key == "minLength" and part[key] == 0):
                shown = part[key] if key == "pattern" else json.dumps(part[key])
                notes.append(f"{word} <code>{_e(shown)}</code>")
        if part.get("description"):
            notes.append(_e(part["description"]))
    if "default" in schema:
        notes.append(f"default <code>{_e(json.dumps(schema['default']))}</code>")
    return "; ".join(notes)


def _schema_table(schema: dict[str, Any]) -> str:
    props = schema.get("properties", {})
    if not props:
        return '<p class="muted">Any JSON object.</p>'
    required = set(schema.get("required", []))
    rows = "".join(
        f"<tr><td><code>{_e(name)}</code>{' <b>required</b>' if name in required else ''}"
        f'</td><td class="t">{_type(prop)}</td><td>{_rules(prop)}</td></tr>'
        for name, prop in props.items()
    )
    return f"<table><tr><th>field</th><th>type</th><th>rules</th></tr>{rows}</table>"


def _operation(path: str, method: str, op: dict[str, Any], schemas: dict[str, Any]) -> str:
    parts = [
        f'<div class="op" id="{_e(op["operationId"])}"><h3><span class="m {_e(method)}">'
        f"{_e(method.upper())}</span>{_e(path)}</h3><p>{_e(op.get('summary', ''))}"
        f"{'' if op.get('security') else ' <span class=muted>(no auth)</span>'}</p>"
    ]
    params = op.get("parameters", [])
    if params:
        rows = "".join(
            f"<tr><td><code>{_e(p['name'])}</code></td><td>{_e(p['in'])}</td>"
            f'<td class="t">{_type(p["schema"])}</td><td>'
            f"{'; '.join(filter(None, [_rules(p['schema']), _e(p.get('description', ''))]))}"
            "</td></tr>"
            for p in params
        )
        parts.append(
            f"<table><tr><th>parameter</th><th>in</th><th>type</th><th>rules</th></tr>"
            f"{rows}</table>"
        )
    body = op.get("requestBody")
    for media, content in (body or {}).get("content", {}).items():
        need = "required" if body and body.get("required") else "optional; empty means {}"
        parts.append(
            f'<p>Body ({_e(media)}, {need}): <span class="t">{_type(content["schema"])}</span></p>'
        )
        ref = content["schema"].get("$ref")
        parts.append(_schema_table(schemas[_ref_name(ref)] if ref else content["schema"]))
        for name, example in content.get("examples", {}).items():
            value = json.dumps(example["value"], indent=2)
            parts.append(f"<p>Example <i>{_e(name)}</i>:</p><pre>{_e(value)}</pre>")
    answers, errors = [], []
    for status, answer in op["responses"].items():
        if "$ref" in answer:
            errors.append(f"<code>{_e(status)}</code>")
            continue
        kinds = [
            f'{_e(media)} <span class="t">{_type(c.get("schema", {}))}</span>'
            for media, c in answer.get("content", {}).items()
        ]
        answers.append(f"<code>{_e(status)}</code> {', '.join(kinds) or 'no body'}")
    if errors:
        answers.append(f'{", ".join(errors)} <a href="#schema-Error">the error envelope</a>')
    parts.append(f"<p>Answers: {' · '.join(answers)}</p></div>")
    return "".join(parts)


def render_docs(document: dict[str, Any]) -> str:
    """The whole page for an OpenAPI 3.1 document."""
    by_tag: dict[str, list[str]] = {}
    nav: list[str] = []
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            tag = op.get("tags", ["other"])[0]
            by_tag.setdefault(tag, []).append(
                _operation(path, method, op, document["components"]["schemas"])
            )
            nav.append(
                f'<a href="#{_e(op["operationId"])}"><code>{_e(method.upper())} '
                f"{_e(path)}</code></a>"
            )
    sections = "".join(f"<h2>{_e(tag)}</h2>{''.join(ops)}" for tag, ops in by_tag.items())
    schemas = "".join(
        f'<div class="op" id="schema-{_e(name)}"><h3>{_e(name)}</h3>'
        f"<p>{_e(schema.get('description', ''))}</p>{_schema_table(schema)}</div>"
        for name, schema in sorted(document["components"]["schemas"].items())
    )
    info = document["info"]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(info['title'])} API</title><style>{_STYLE}</style></head><body><main>"
        f"<h1>{_e(info['title'])} API <small class=muted>{_e(info['version'])}</small></h1>"
        f"<p>{_e(info.get('description', ''))} The machine-readable document is "
        '<a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1). Authenticate with '
        "<code>Authorization: Bearer cue_sk_…</code>.</p>"
        f"<nav>{''.join(nav)}</nav>{sections}<h2>schemas</h2>{schemas}</main></body></html>"
    )
