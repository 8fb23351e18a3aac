"""The browser assets shipped in this package (static/), served at STATIC_URL by the app: the
console's own files and the vendored libraries the console, GraphiQL and the OpenAPI page load
(static/vendor/README.md says where each comes from). Nothing is fetched from a CDN."""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
STATIC_URL = "/static"

HTMX = "vendor/htmx-2.0.11.min.js"
UPLOT_JS = "vendor/uPlot-1.6.32.iife.min.js"
UPLOT_CSS = "vendor/uPlot-1.6.32.min.css"
REACT = "vendor/react-18.2.0.production.min.js"
REACT_DOM = "vendor/react-dom-18.2.0.production.min.js"
GRAPHIQL_JS = "vendor/graphiql-3.8.3.min.js"
GRAPHIQL_CSS = "vendor/graphiql-3.8.3.min.css"
SWAGGER_JS = "vendor/swagger-ui-5.18.2-bundle.js"
SWAGGER_PRESET = "vendor/swagger-ui-5.18.2-standalone-preset.js"
SWAGGER_CSS = "vendor/swagger-ui-5.18.2.css"
FAVICON = "favicon.svg"


def url(name: str) -> str:
    """The URL path of an asset."""
    return f"{STATIC_URL}/{name}"
