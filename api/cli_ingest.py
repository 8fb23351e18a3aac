"""CLI commands for reading the monitoring platform (pull, monitorsim)."""

import typer

ingest_app = typer.Typer()
