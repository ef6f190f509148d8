"""The router: finds a request's route by its path instead of trying every route in turn,
and calls handlers without a per-route exception layer (the edge renders every error).

Matching is Starlette's own (`Route.matches`, first full match wins, a partial match
answers 405, nothing answers 404); only the routes that could match are tried, in their
registered order: routes whose path equals the request's, routes whose literal prefix
(the path before its first `{`) starts it, and anything that is not a plain route (a mount).
Prefixes are filed by their folder (up to their last `/`), so a request looks up one entry
per `/` in its path instead of testing every prefix.
"""

from __future__ import annotations

import inspect
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

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
        self._prefixed: dict[str, list[tuple[str, int]]] = {}  # by the prefix's folder
        self._always: list[int] = []
        self._found: dict[str, list[int]] = {}  # candidates by path, for exact paths

    def _index(self) -> None:
        self._exact, self._prefixed, self._always, self._found = {}, {}, [], {}
        for position, route in enumerate(self.routes):
            if isinstance(route, Route) and route.path.startswith("/"):
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
                    self._prefixed.setdefault(folder, []).append((prefix, position))
                else:
                    self._exact.setdefault(route.path, []).append(position)
            else:
                self._always.append(position)
        self._indexed = len(self.routes)

    def _candidates(self, path: str) -> list[int]:
        known = self._found.get(path)
        if known is not None:
            return known
        found = [*self._exact.get(path, ()), *self._always]
        end = path.find("/")
        while end != -1:
            for prefix, position in self._prefixed.get(path[: end + 1], ()):
                if path.startswith(prefix):
                    found.append(position)
            end = path.find("/", end + 1)
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
        partial: tuple[BaseRoute, Scope] | None = None
        for position in self._candidates(_route_path(scope)):
            route = self.routes[position]
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                scope["route"] = route  # as Starlette's router does; metrics read it
                await route.handle(scope, receive, send)
                return
            if match is Match.PARTIAL and partial is None:
                partial = (route, child_scope)
        if partial is not None:
            scope.update(partial[1])
            scope["route"] = partial[0]
            await partial[0].handle(scope, receive, send)
            return
        await self.default(scope, receive, send)
