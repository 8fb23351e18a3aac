"""The reviewer console at /console: server-rendered pages (Jinja2 templates, htmx for partial
updates) over the registry's reads and use cases, in the same Litestar app as the API. Every
asset it loads ships in this package (static/), as do those of GraphiQL and the OpenAPI page.

`ConsolePlugin` adds the pages, the static files and the template engine to an app."""

import functools
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from litestar.config.app import AppConfig
from litestar.datastructures import CacheControlHeader
from litestar.plugins import InitPluginProtocol
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from api.console import assets
from api.console.pages import ROUTER
from scoring.rulebook import Rulebook, load_rulebook


def environment(rulebook: Rulebook | None = None) -> Environment:
    """The templates, with filters that show times in the rulebook's zone (Asia/Shanghai)."""
    env = Environment(
        loader=PackageLoader("api.console", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    zone = (rulebook or load_rulebook()).zone

    def local(fmt: str) -> Callable[[Any], str]:
        def show(value: datetime | date | None) -> str:
            if value is None:
                return ""
            if isinstance(value, datetime):
                value = value.astimezone(zone)
            return value.strftime(fmt)

        return show

    env.filters["localdate"] = local("%Y-%m-%d")
    env.filters["localtime"] = local("%Y-%m-%d %H:%M")
    env.filters["month"] = local("%Y-%m")
    env.globals["asset"] = assets.url
    env.globals["assets"] = assets
    return env


@functools.cache
def graphiql_page() -> str:
    """GraphiQL from this package's assets, with the Authorization header to fill in."""
    return environment().get_template("graphiql.html").render()


class ConsolePlugin(InitPluginProtocol):
    def __init__(self, rulebook: Rulebook | None = None) -> None:
        self.rulebook = rulebook or load_rulebook()

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend(
            [
                ROUTER,
                create_static_files_router(
                    path=assets.STATIC_URL,
                    directories=[assets.STATIC_DIR],
                    name="static",
                    cache_control=CacheControlHeader(max_age=86400),
                    include_in_schema=False,
                ),
            ]
        )
        engine = JinjaTemplateEngine(engine_instance=environment(self.rulebook))
        app_config.template_config = TemplateConfig(instance=engine)
        return app_config


__all__ = ["ConsolePlugin", "graphiql_page"]
