"""The Litestar application: GraphQL at /graphql (GraphiQL for humans), the reviewer console at
/console, /healthz, /readyz, /metrics, the OpenAPI page at /schema. `create_api_app` /
`create_serve_app` are the ASGI server's factory targets."""

import asyncio
import contextlib
import json
import os
from collections.abc import Callable, Coroutine, Sequence
from importlib.metadata import version
from typing import Any, ClassVar, TypeVar

import msgspec
from litestar import Litestar, Request, Response, post
from litestar.datastructures import Accept, State
from litestar.di import Provide
from litestar.enums import MediaType
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.types import ControllerRouterHandler
from strawberry.litestar import make_graphql_controller
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from api.console import ConsolePlugin, assets, graphiql_page
from api.context import (
    Context,
    DatabaseUnavailable,
    LargeRequestLane,
    Services,
    graphql_context,
    request_context,
)
from api.errors import (
    BAD_REQUEST,
    DATABASE_UNAVAILABLE,
    INTERNAL,
    OVERLOADED,
    UNAVAILABLE,
    ApiError,
    Unauthenticated,
)
from api.observability import configure_logging, log, request_id_middleware
from api.rest import ROUTES
from api.schema import build_schema
from api.schema.errors import apply_error_policy
from registry import db, heap, migrate
from registry.lifetime import stop_when_orphaned
from registry.settings import Settings, get_settings

T = TypeVar("T")
POST_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})
GRAPHQL_RESPONSE = "application/graphql-response+json"
"""GraphQL over HTTP's own media type: a client that asks for it gets it, and with it a 400 for a
request that does not validate (under application/json that is a 200, as clients expect)."""
MAX_BODY_BYTES = 512 * 1024
"""A 1,000-code `eligibilities` request is about 70 kB."""
LARGE_BODY_BYTES = 16 * 1024
"""POST bodies larger than this (batches of more than ~200 codes) run on the large requests'
lane (api.context.LargeRequestLane), beside the event loop every other request runs on."""


def _graphql_error(
    message: str,
    code: str,
    status: int,
    headers: dict | None = None,
    media_type: str = MediaType.JSON,
) -> Response:
    body: dict[str, Any] = {"errors": [{"message": message, "extensions": {"code": code}}]}
    if media_type != GRAPHQL_RESPONSE:
        body = {"data": None, **body}  # GraphQL over HTTP: a request error has no data entry
    return Response(body, status_code=status, headers=headers, media_type=media_type)


def response_media_type(accept: Accept) -> str:
    """application/json unless the client ranks GraphQL over HTTP's own media type higher."""
    return accept.best_match([MediaType.JSON, GRAPHQL_RESPONSE], default=MediaType.JSON)


RETRY_AFTER_S = {OVERLOADED: 1, DATABASE_UNAVAILABLE: 5}


def response_status(result: Any, media_type: str) -> tuple[int, dict[str, str]]:
    """Status and headers of a GraphQL answer: 503 with Retry-After when the worker is busy or
    the database unavailable; otherwise 200, except under GraphQL over HTTP's own media type
    when nothing ran: 400 when the document did not parse or validate or the variables did not
    coerce (such errors have no path), 500 when a bug of ours stopped it."""
    if not result.errors:
        return 200, {}
    codes = {(e.extensions or {}).get("code") for e in result.errors}
    if busy := codes & UNAVAILABLE:
        return 503, {"Retry-After": str(max(RETRY_AFTER_S[c] for c in busy))}
    if media_type != GRAPHQL_RESPONSE or result.data is not None:
        return 200, {}
    if any(e.path is not None for e in result.errors):
        return 200, {}  # a field's error nulled the whole answer: the request itself was fine
    return (500 if INTERNAL in codes else 400), {}


class BadRequest(ValueError):
    pass


def graphql_params(body: bytes, content_type: str) -> tuple[str, dict | None, str | None]:
    """query, variables and operationName of a POSTed GraphQL request (JSON only)."""
    if content_type != "application/json":
        raise BadRequest(f"send the request as application/json, not {content_type or 'nothing'}")
    try:
        data = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError) as e:  # RecursionError: nested too deeply
        raise BadRequest(f"the body is not JSON that can be read: {e}") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object with `query` (batches are not accepted)")
    query, variables, name = data.get("query"), data.get("variables"), data.get("operationName")
    if not isinstance(query, str) or not query.strip():
        raise BadRequest("`query` must be a non-empty string")
    if not isinstance(variables, dict | None):
        raise BadRequest("`variables` must be an object or null")
    if not isinstance(name, str | None):
        raise BadRequest("`operationName` must be a string or null")
    return query, variables, name


def _unauthenticated(request: Request, exc: Unauthenticated) -> Response:
    return _graphql_error(str(exc), exc.code, 401, {"WWW-Authenticate": 'Bearer realm="geocredit"'})


def _unavailable(request: Request, exc: DatabaseUnavailable) -> Response:
    retry = {"Retry-After": str(RETRY_AFTER_S[exc.code])}
    return _graphql_error(str(exc), exc.code, 503, retry)


def _too_large(request: Request, exc: HTTPException) -> Response:
    # The rest of the body is left unread: the connection cannot carry another request.
    return _graphql_error(
        f"request body over {MAX_BODY_BYTES} bytes",
        "REQUEST_TOO_LARGE",
        exc.status_code,
        headers={"Connection": "close"},
    )


def _log_unhandled(exc: Exception, scope: Any) -> None:
    if not isinstance(exc, HTTPException | ApiError):
        log.error("unhandled exception", path=scope.get("path"), exc_info=exc)


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="geocredit",
        version=version("geocredit"),
        description="Operational routes of the geothermal reinjection credit registry. "
        "Approval systems use GraphQL at /graphql (schema: graphql/schema.graphql), sending "
        "their API token in the header `Authorization: Bearer <token>` (an admin creates one "
        "with `geocredit token create`). Reviewers use the console at /console.",
        path="/schema",
        render_plugins=[
            SwaggerRenderPlugin(
                path="/",
                js_url=assets.url(assets.SWAGGER_JS),
                css_url=assets.url(assets.SWAGGER_CSS),
                standalone_preset_js_url=assets.url(assets.SWAGGER_PRESET),
                favicon=f'<link rel="icon" href="{assets.url(assets.FAVICON)}">',
            )
        ],
    )


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


async def unless_disconnected(
    request: Request, context: Context, work: Coroutine[Any, Any, T]
) -> T:
    """`work`; when the client disconnects first, a query is cancelled at its next await
    (ClientGone): a client that gave up costs no more CPU. A mutation, once running, is
    finished (its reads and writes are one transaction either way)."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    task, gone = asyncio.ensure_future(work), asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
        if not task.done() and context.cancellable:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise ClientGone
        return await task
    finally:
        gone.cancel()
        task.cancel()  # when this handler is cancelled itself (the server stops)


def graphql_controller(production: bool) -> type:
    """strawberry's Litestar controller at /graphql, with our JSON codec and error policy."""
    base = make_graphql_controller(
        build_schema(),
        path="/graphql",
        context_getter=graphql_context,
        graphql_ide="graphiql",
        subscription_protocols=(),  # no subscriptions
    )

    class GraphQLController(base):
        include_in_schema = False  # its contract is the SDL, not OpenAPI
        # strawberry makes the empty sub-response in a worker thread: a thread hop per request.
        dependencies: ClassVar = {
            **base.dependencies,
            "response": Provide(lambda: Response({}), sync_to_thread=False),
        }

        async def render_graphql_ide(self, request: Request) -> Response[str]:
            return Response(graphiql_page(), media_type=MediaType.HTML)  # assets of our own

        def encode_json(self, data: object) -> bytes:
            return msgspec.json.encode(data)  # several times faster than json.dumps

        def decode_json(self, data: str | bytes) -> object:
            try:
                return msgspec.json.decode(data)
            except (msgspec.DecodeError, RecursionError) as e:  # strawberry answers 400
                raise json.JSONDecodeError(str(e), "", 0) from None

        @post(status_code=200)
        async def handle_http_post(self, request: Request) -> Response:
            """POST, the approval systems' path: JSON in, JSON (or GraphQL over HTTP's own
            type) out, every refusal with a code; GET and GraphiQL stay strawberry's."""
            context = await graphql_context(request)  # 401 before anything else
            media_type = response_media_type(request.accept)
            try:
                body = await request.body()
                query, variables, name = graphql_params(body, request.content_type[0])
                lane: LargeRequestLane | None = request.app.state.get("lane")
                large = lane is not None and len(body) > LARGE_BODY_BYTES
                if large:
                    context = request_context(lane.services, context.client, context.request_id)
                execution = self.schema.execute(
                    query,
                    variables,
                    context_value=context,
                    operation_name=name,
                    allowed_operation_types=POST_OPERATIONS,
                )
                result = await unless_disconnected(
                    request, context, lane.run(execution) if large else execution
                )
            except BadRequest as e:
                problem = str(e)
            except CannotGetOperationTypeError as e:
                problem = e.as_http_error_reason()
            except InvalidOperationTypeError as e:
                problem = e.as_http_error_reason("POST")
            except ClientGone:
                log.info("client disconnected: its request was cancelled")
                return Response(b"", status_code=503)  # nobody reads it
            else:
                body = await self.process_result(request, result)
                status, headers = response_status(result, media_type)
                if status != 200 and media_type == GRAPHQL_RESPONSE and result.data is None:
                    body.pop("data", None)  # GraphQL over HTTP: nothing ran, no data entry
                return Response(
                    msgspec.json.encode(body),
                    status_code=status,
                    headers=headers,
                    media_type=media_type,
                )
            return _graphql_error(problem, BAD_REQUEST, 400, media_type=media_type)

        async def process_result(self, request: Request, result: Any) -> Any:
            if result.errors:
                result.errors = apply_error_policy(
                    result.errors,
                    production=production,
                    request_id=request.scope["state"].get("request_id", "-"),
                )
            return await super().process_result(request, result)

    return GraphQLController


def create_app(
    settings: Settings | None = None,
    *,
    database_url: str | None = None,
    with_scheduler: bool = False,
    extra_routes: Sequence[ControllerRouterHandler] = (),
    log_level: str | None = None,
    on_startup: Sequence[Callable[[], Any]] = (),
) -> Litestar:
    """The application; process-wide runtime settings are its entry points' (`on_startup`)."""
    settings = settings or get_settings()
    configure_logging(log_level or os.environ.get("GEOCREDIT_LOG_LEVEL", "INFO"))
    url = database_url or db.database_url(settings)
    production = settings.env == "production"
    services = Services.for_database(url, production=production)
    graphql = graphql_controller(production)

    scheduler: list[Any] = []
    state = State(
        {
            "services": services,
            "metrics": services.metrics,
            "head_revision": migrate.head_revision(url),
        }
    )

    async def start_lane() -> None:
        state.lane = LargeRequestLane(services)

    async def start_scheduler() -> None:
        from jobs.scheduler import build_scheduler, start_scheduler

        scheduler.append(build_scheduler(settings))
        start_scheduler(scheduler[0])

    async def stop() -> None:
        from jobs.scheduler import stop_scheduler

        for s in scheduler:
            stop_scheduler(s, wait=False)
        if state.get("lane") is not None:
            await state.lane.close()
        await services.close()

    return Litestar(
        route_handlers=[graphql, *ROUTES, *extra_routes],
        middleware=[request_id_middleware],
        exception_handlers={
            Unauthenticated: _unauthenticated,
            DatabaseUnavailable: _unavailable,
            413: _too_large,
        },
        after_exception=[_log_unhandled],
        request_max_body_size=MAX_BODY_BYTES,
        on_startup=[*on_startup, start_lane, *([start_scheduler] if with_scheduler else [])],
        on_shutdown=[stop],
        state=state,
        openapi_config=openapi_config(),
        plugins=[ConsolePlugin(services.rulebook)],
        logging_config=None,
        debug=False,
    )


def create_api_app() -> Litestar:
    """The API alone (`geocredit api`)."""
    return create_app(on_startup=[heap.freeze_long_lived, stop_when_orphaned])


def create_serve_app() -> Litestar:
    """API and scheduler in one process (`geocredit serve`); the scheduler's pulls run in
    processes of their own, so that their runtime settings are not the API's."""
    return create_app(with_scheduler=True, on_startup=[heap.freeze_long_lived, stop_when_orphaned])
