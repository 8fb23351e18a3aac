"""The published contracts, exported from the code: graphql/schema.graphql and
openapi/openapi.json. CI (tests/api/test_contracts.py) fails when the files drift."""

import json
from pathlib import Path

from litestar import Litestar

SDL_PATH = Path("graphql/schema.graphql")
OPENAPI_PATH = Path("openapi/openapi.json")


def sdl() -> str:
    from api.schema import build_schema

    return build_schema().as_str() + "\n"


def openapi() -> str:
    """The REST routes' OpenAPI document (the GraphQL route is described by the SDL instead)."""
    from api.app import openapi_config
    from api.rest import ROUTES

    document = Litestar(route_handlers=ROUTES, openapi_config=openapi_config()).openapi_schema
    return json.dumps(document.to_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def contracts() -> dict[Path, str]:
    return {SDL_PATH: sdl(), OPENAPI_PATH: openapi()}


def project_root() -> Path:
    """The source checkout this package runs from, else the current folder."""
    checkout = Path(__file__).resolve().parent.parent
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()


def drifted(root: Path) -> list[Path]:
    """Contract files under `root` that differ from what the code produces."""
    return [
        path
        for path, text in contracts().items()
        if not (root / path).is_file() or (root / path).read_text(encoding="utf-8") != text
    ]


def write(root: Path) -> list[Path]:
    written = []
    for path, text in contracts().items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written
