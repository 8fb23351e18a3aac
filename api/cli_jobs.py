"""CLI commands for the scheduled work (pull, rollup, score, worker, jobs, monitorsim)."""

import typer

jobs_app = typer.Typer()
