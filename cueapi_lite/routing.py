"""The router: finds a request's route by its path instead of trying every route in turn,
and calls handlers without a per-route exception layer (the edge renders every error).

Matching is Starlette's own (`Route.matches`, first full match wins, a partial match
answers 405, nothing answers 404); only the routes that could match are tried, in their
registered order: routes whose path equals the request's, routes whose literal prefix
(the path before its first `{`) starts it, and anything that is not a plain route (a mount).
Prefixes are filed by their folder (up to their last `/`), each folder with the prefixes
of its ancestors, so a request finds its candidates with one look-up of its nearest filed
folder instead of testing every prefix; a route that does not serve the request's method
is tried only when no route matched fully (it can only answer 405). The 404 and the 405
(whose `Allow` names every method of the path, one Route per method here) are raised as
API errors for the edge to render.
"""

from __future__ import annotations

import inspect
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import MethodNotAllowed, NotFound

__all__ = ["IndexedRouter"]


def _lean(endpoint: Any) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)

    return app


def _route_path(scope: Scope) -> str:
    """The path the routes see: the request's path below the app's `root_path`."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


class IndexedRouter(Router):
    def __init__(self, routes: list[BaseRoute], **options: Any) -> None:
        super().__init__(routes=routes, **options)
        self._indexed = -1
        self._exact: dict[str, list[int]] = {}
        # By folder: the prefixed routes filed there or in an ancestor folder, in order.
        self._prefixed: dict[str, list[tuple[str, int]]] = {}
        self._always: list[int] = []
        self._found: dict[str, list[int]] = {}  # candidates by path, for exact paths
        self._methods: list[set[str] | None] = []  # by position; None: any method
        self._allowed: dict[str, str] = {}  # a path template's methods, for `Allow`

    def _index(self) -> None:
        self._exact, self._always, self._found, self._methods = {}, [], {}, []
        filed: dict[str, list[tuple[str, int]]] = {}
        allowed: dict[str, set[str]] = {}
        for position, route in enumerate(self.routes):
            methods = route.methods if isinstance(route, Route) else None
            self._methods.append(methods or None)
            if isinstance(route, Route) and route.path.startswith("/"):
                allowed.setdefault(route.path, set()).update(methods or ())
                wrapped = getattr(route.app, "__qualname__", "")
                if inspect.iscoroutinefunction(route.endpoint) and wrapped.startswith(
                    "request_response."
                ):
                    # Our handlers return a Response and raise ApiError for the edge to
                    # render: the exception layer Starlette wraps each route in adds nothing.
                    route.app = _lean(route.endpoint)
                if "{" in route.path:
                    prefix = route.path[: route.path.index("{")]
                    folder = prefix[: prefix.rindex("/") + 1]
                    filed.setdefault(folder, []).append((prefix, position))
                else:
                    self._exact.setdefault(route.path, []).append(position)
            else:
                self._always.append(position)
        self._prefixed = {
            folder: sorted(
                (entry for other, entries in filed.items() if folder.startswith(other)
                 for entry in entries),
                key=lambda entry: entry[1],
            )
            for folder in filed
        }  # fmt: skip
        self._allowed = {path: ", ".join(sorted(methods)) for path, methods in allowed.items()}
        self._indexed = len(self.routes)

    def _candidates(self, path: str) -> list[int]:
        known = self._found.get(path)
        if known is not None:
            return known
        found = [*self._exact.get(path, ()), *self._always]
        end = path.rfind("/")
        while end != -1:  # the nearest filed folder holds its ancestors' prefixes too
            filed = self._prefixed.get(path[: end + 1])
            if filed is not None:
                found += [position for prefix, position in filed if path.startswith(prefix)]
                break
            end = path.rfind("/", 0, end)
        found.sort()
        if path in self._exact:  # a fixed set of paths: remembering them is bounded
            self._found[path] = found
        return found

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().app(scope, receive, send)
            return
        if self._indexed != len(self.routes):
            self._index()
        scope.setdefault("router", self)
        method = scope["method"]
        other_methods: list[BaseRoute] = []
        for position in self._candidates(_route_path(scope)):
            route = self.routes[position]
            methods = self._methods[position]
            if methods is not None and method not in methods:
                other_methods.append(route)
                continue
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                scope["route"] = route  # as Starlette's router does; metrics read it
                await route.handle(scope, receive, send)
                return
        for route in other_methods:
            match, child_scope = route.matches(scope)
            if match is Match.PARTIAL:
                scope.update(child_scope)
                scope["route"] = route
                raise MethodNotAllowed(
                    f"Method {method} is not allowed on {scope['path']}",
                    headers={"Allow": self._allowed.get(getattr(route, "path", ""), "")},
                )
        raise NotFound(f"No such endpoint: {scope['path']}")
